"""Which arm of an experiment a user is in: GrowthBook's bucketing, reproduced exactly.

Stage 0 of a decision settles arm assignment as a pure function of the
request, so these are pure functions of (seed, user id, weights, coverage):
the same user gets the same arm on every server, in every process, forever,
and the same arm GrowthBook's SDKs would give for the same seed, weights and
coverage. The reference is GrowthBook's SDK (``util.ts``: ``hash``,
``getBucketRanges``, ``chooseVariation``, ``inNamespace``,
``getEqualWeights``), pinned by its cross-SDK conformance suite.

The hash is 32-bit FNV-1a over the UTF-16 code units of the text (what
JavaScript's ``charCodeAt`` gives), not over UTF-8 bytes or code points: the
two differ for any character outside the Basic Multilingual Plane. A decision
in an experiment hashes once per experiment, so the cost matters: FNV-1a is
streamed, the state after the seed is kept per seed, and the user id's part
runs in C (``_bucketing.c``) where the package was built with it. The Python
beside it (an ASCII id, whose UTF-16 units are its bytes, hashed from its
bytes without decoding) gives the same floats, and runs when the helper is
not built or ``TAILOR_NO_NATIVE=1``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache

from tailor.dsl import native

try:
    from ._bucketing import hash_after as _native_hash_after  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler: the Python below runs
    _native_hash_after = None

HashValue = str | int | float | bool
Range = tuple[float, float]  # [start, end): half-open
Namespace = tuple[str, float, float]  # (namespace id, start, end): the user's share of it is [start, end)

_OFFSET = 0x811C9DC5  # FNV-1a 32-bit offset basis
_PRIME = 0x01000193  # FNV-1a 32-bit prime
_MASK = 0xFFFFFFFF
_UNMASKED_RUN = 48  # units hashed before reducing mod 2**32: below it, small integers multiply faster than masking
_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"  # native order, for memoryview.cast("H")
_WEIGHT_SUM = (0.99, 1.01)  # weights summing outside this range are ignored for equal weights, as in the SDKs


def _units(text: str) -> bytes | memoryview:
    """The UTF-16 code units of ``text``: its bytes when it is ASCII, where the two are the same."""
    if text.isascii():
        return text.encode()
    return memoryview(text.encode(_UTF16, "surrogatepass")).cast("H")


def _fnv(state: int, units: bytes | memoryview) -> int:
    """FNV-1a continued from ``state`` over ``units``.

    ``(h ^ c) * p mod 2**32`` only needs reducing at the end, since xor with a
    16-bit unit and multiplication both commute with the reduction; long
    inputs (past ``_UNMASKED_RUN`` units) are reduced at every step, as integers would grow too large.
    """
    prime = _PRIME  # a local: read once per unit
    if len(units) <= _UNMASKED_RUN:
        for unit in units:
            state = (state ^ unit) * prime
        return state & _MASK
    for unit in units:
        state = ((state ^ unit) * prime) & _MASK
    return state


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text``'s UTF-16 code units, unsigned (``hashFnv32a`` in the SDK)."""
    return _fnv(_OFFSET, _units(text))


@lru_cache(maxsize=4096)
def _seed_state(seed: str) -> int:
    """FNV-1a state after the seed: every v2 hash of an experiment starts from it."""
    return _fnv(_OFFSET, _units(seed))


def python_hash_after(state: int, value: str) -> float:
    """The version-2 hash of ``seed + value``, from the seed's state ``fnv1a32(seed)``.

    The engine keeps each experiment's seed state in its plan, so a decision
    hashes only the user id. ``hash_after`` is this, or the C helper that
    computes the same.
    """
    return _second(_fnv(state, _units(value)))


# The second pass, FNV-1a over the decimal digits of the first hash, by tables rather than a loop per digit.
# Xor with a digit (0x30-0x39, below 64) only changes a state's low 6 bits, and those evolve on their own:
# ``(s ^ c) * p`` is ``s * p + d * p`` where ``d = ((s & 63) ^ c) - (s & 63)``. So two digits from a state
# ``s`` give ``s * p**2 + t``, with ``t`` a function of ``s & 63`` and the two digits alone: a table of 6,400.
# A first hash of 7 to 10 digits (all but one in about 4,300) is a head of 1 to 4 digits, whose state from
# the offset basis is another table (4,295 of them), then three pairs.
_SPLIT = 10**6
_P2 = _PRIME * _PRIME


def _tables() -> tuple[list[int], list[int]]:
    heads = [0] + [_fnv(_OFFSET, str(head).encode()) for head in range(1, _MASK // _SPLIT + 1)]
    pairs = []
    for low in range(64):
        for pair in range(100):
            first, second = 0x30 + pair // 10, 0x30 + pair % 10
            after = ((low ^ first) * _PRIME) & 63
            pairs.append((((low ^ first) - low) * _P2 + ((after ^ second) - after) * _PRIME) & _MASK)
    return heads, pairs


_HEADS, _PAIRS = _tables()


def _second(first: int) -> float:
    """``fnv1a32(str(first)) % 10000 / 10000``: the second pass of a version-2 hash."""
    head, tail = divmod(first, _SPLIT)
    if not head:  # fewer than 7 digits
        return (_fnv(_OFFSET, str(first).encode()) % 10000) / 10000
    pairs, p2 = _PAIRS, _P2
    state = _HEADS[head]
    high, rest = divmod(tail, 10000)
    middle, low = divmod(rest, 100)
    state = state * p2 + pairs[(state & 63) * 100 + high]
    state = state * p2 + pairs[(state & 63) * 100 + middle]
    state = state * p2 + pairs[(state & 63) * 100 + low]
    return ((state & _MASK) % 10000) / 10000


hash_after = _native_hash_after if _native_hash_after is not None and native.allowed() else python_hash_after


def js_string(value: HashValue) -> str:
    """``String(value)`` as JavaScript writes it, so a non-text id hashes as the SDKs hash it.

    ``True`` is ``"true"``, ``3.0`` is ``"3"``, ``1e-7`` is ``"1e-7"`` and
    ``1e21`` is ``"1e+21"`` (ECMAScript Number::toString).
    """
    if type(value) is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _js_number(float(value))


def _js_number(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"  # -0 too
    sign = "-" if number < 0 else ""
    digits_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    k = len(digits)
    n = k + int(exponent)  # the decimal point sits n digits into ``digits``
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def hash(seed: str, value: HashValue, version: int = 2) -> float | None:
    """Where ``value`` falls in [0, 1) for ``seed``; None for a version the SDKs do not define.

    Version 2 (experiments, holdouts): ``fnv(str(fnv(seed + value))) % 10000 / 10000``.
    Version 1 (namespaces): ``fnv(value + seed) % 1000 / 1000`` (value first).
    """
    text = value if type(value) is str else js_string(value)
    if version == 2:
        return hash_after(_seed_state(seed), text)
    if version == 1:
        return (_fnv(_fnv(_OFFSET, _units(text)), _units(seed)) % 1000) / 1000
    return None


def get_equal_weights(n: int) -> tuple[float, ...]:
    """``n`` equal weights (none for ``n <= 0``)."""
    return (1 / n,) * n if n > 0 else ()


def bucket_ranges(n: int, coverage: float | None = 1.0, weights: Sequence[float] | None = None) -> tuple[Range, ...]:
    """The [start, end) of each of ``n`` arms for ``weights`` (equal when absent or invalid) at ``coverage``.

    Arm i starts where the weights before it sum to, whatever the coverage;
    coverage shrinks each arm from its right end, so lowering it only drops
    users out and never moves one between arms. Coverage is clamped to [0, 1];
    weights of the wrong length, or summing outside [0.99, 1.01], are
    replaced by equal weights.
    """
    coverage = 1.0 if coverage is None else min(max(coverage, 0.0), 1.0)
    chosen: Sequence[float] = get_equal_weights(n)
    if weights is not None and len(weights) == n:
        total = 0.0
        for weight in weights:
            total += weight
        if _WEIGHT_SUM[0] <= total <= _WEIGHT_SUM[1]:
            chosen = weights
    ranges = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return tuple(ranges)


def choose_arm(n: float, ranges: Sequence[Range]) -> int:
    """The index of the first range holding ``n`` (``start <= n < end``), or -1: not in the experiment."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(user_id: HashValue, namespace: Namespace) -> bool:
    """Whether the user's version-1 hash for the namespace falls in its [start, end).

    Experiments sharing a namespace id with disjoint ranges never share a user.
    """
    namespace_id, start, end = namespace
    n = hash("__" + namespace_id, user_id, 1)
    assert n is not None
    return start <= n < end
