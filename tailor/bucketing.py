"""Experiment bucketing, as GrowthBook's SDKs do it: the public face of ``tailor.compiler.bucketing``.

    from tailor.bucketing import bucket_ranges, choose_arm, hash
    arm = choose_arm(hash("hero-test", "u42"), bucket_ranges(2, 0.5, [0.5, 0.5]))  # 0, 1 or -1 (not in it)

A holdout is ``hash(seed, user_id) < share`` with its own seed: the range [0, share).
"""

from tailor.compiler.bucketing import (
    HashValue,
    Namespace,
    Range,
    bucket_ranges,
    choose_arm,
    get_equal_weights,
    hash,
    in_namespace,
)

__all__ = [
    "HashValue",
    "Namespace",
    "Range",
    "bucket_ranges",
    "choose_arm",
    "get_equal_weights",
    "hash",
    "in_namespace",
]
