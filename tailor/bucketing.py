"""Experiment bucketing, as the engine draws arms: GrowthBook's version 2 hash and bucket ranges.

The implementation is ``tailor.compiler.bucketing``; this is its public name,
for checking an arm outside the engine (a notebook, an analysis job).
"""

from tailor.compiler.bucketing import bucket_ranges, choose_arm, get_equal_weights, hash, in_namespace

__all__ = ["bucket_ranges", "choose_arm", "get_equal_weights", "hash", "in_namespace"]
