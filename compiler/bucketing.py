"""Deterministic assignment to experiment arms: GrowthBook's hashing and bucket ranges.

A user's arm is a pure function of the experiment's seed, its weights and
coverage, and the ``user_id``, so every process, every reload that keeps
the experiment's phase and every store agree without asking anyone. The
functions follow GrowthBook's SDKs so that an arm drawn here can be
checked against theirs:

- ``hash`` (version 2): 32-bit FNV-1a over the UTF-16 code units of
  ``seed + value``, applied again to the decimal text of the first hash,
  mod 10,000, as a fraction in [0, 1) with 4 decimals. Version 1 is
  FNV-1a of ``value + seed`` mod 1,000.
- ``bucket_ranges``: each arm's range starts where the weights before it
  end; coverage shrinks an arm from its right end, so lowering coverage
  never moves a user from one arm to another, only out of the experiment.
- ``choose_arm``: the arm whose half-open range holds the hash, or -1.

FNV-1a reads its input one code unit at a time, so the state after the
seed can be computed once: ``hash_after`` continues from it, which is what
the decision path does per request.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_UNMASKED = 16  # code units hashed before masking: the state grows by 25 bits per unit


def fnv1a32(text: str, state: int = FNV_OFFSET) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``text``, continuing from ``state``.

    XOR with a code unit touches only the low 16 bits, and the low 32 bits of a
    product depend only on the low 32 bits of its factors, so the mask can wait
    until the end: a third faster per code unit on a user id. Long texts are
    masked as they go, so the number never grows past a few hundred bits.
    """
    if text.isascii():
        units: Sequence[int] = text.encode("ascii")  # one code unit per byte
    else:
        raw = text.encode("utf-16-le", "surrogatepass")
        units = struct.unpack(f"<{len(raw) // 2}H", raw)
    if len(units) <= _UNMASKED:
        for unit in units:
            state = (state ^ unit) * 0x01000193
        return state & 0xFFFFFFFF
    for unit in units:
        state = ((state ^ unit) * 0x01000193) & 0xFFFFFFFF
    return state


def hash_after(state: int, value: str) -> float:
    """Version 2's hash of ``seed + value``, given ``state = fnv1a32(seed)``."""
    second = FNV_OFFSET
    for unit in str(fnv1a32(value, state)).encode("ascii"):  # ten digits at most: no mask until the end
        second = (second ^ unit) * 0x01000193
    return ((second & 0xFFFFFFFF) % 10000) / 10000


def hash(seed: str, value: str, version: int = 2) -> float | None:  # shadows the builtin: the name GrowthBook gives it
    """A fraction in [0, 1) for ``value`` under ``seed``; None for a version there is not."""
    if version == 2:
        return hash_after(fnv1a32(seed), value)
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def get_equal_weights(n: int) -> list[float]:
    """``n`` equal weights that sum to 1; none for n < 1."""
    return [1 / n] * n if n >= 1 else []


def bucket_ranges(n: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """Each arm's half-open range: ``[start, start + coverage * weight)``, ``start`` the weights before it.

    As GrowthBook: coverage is clamped to [0, 1], and weights that are missing,
    of the wrong count or not summing to 1 (within 0.01) are replaced by equal ones.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    equal = get_equal_weights(n)
    chosen = list(weights) if weights is not None else equal
    if len(chosen) != n or not 0.99 <= sum(chosen) <= 1.01:
        chosen = equal
    ranges = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_arm(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The index of the range that holds ``n`` (a hash), or -1 when none does."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(user_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether ``user_id`` falls in GrowthBook namespace ``(id, start, end)`` (a version 1 hash)."""
    n = hash("__" + namespace[0], user_id, 1)
    return n is not None and namespace[1] <= n < namespace[2]
