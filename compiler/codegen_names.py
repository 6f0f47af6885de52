"""Python identifiers for what the generated code names: features, slots, checks.

A reader of the generated module should recognise ``views("Electronics",
24h)`` in ``views_electronics_24h`` and ``context.page`` in ``context_page``.
Text that does not make a plain identifier (non-ASCII, too long, a Python
keyword or a name the generated code itself uses) gets a numbered name
instead, and so does the second of two texts that spell the same name.
Names depend only on the plan, never on hashing, so every process writes the
same source.
"""

from __future__ import annotations

import builtins
import keyword
import re

# Longer derived names read worse than a numbered one.
MAX_NAME_LENGTH = 48

# Names the generated code uses for itself: module globals, parameters and locals.
GENERATED_NAMES = frozenset(
    {
        *("stage0", "stage1", "needed", "walk", "decide", "bisect_left", "bisect_right"),
        *("arith_value", "Values", "FeatureKind", "FeatureRef"),
        *("alive", "context", "fetched", "features", "slots", "decisions", "choices", "out", "make_values"),
        *("candidates", "lowest", "bit", "settled", "unknown", "truth", "left", "right", "kind", "i", "V", "keep"),
    }
)
RESERVED_PREFIXES = ("check_", "truth_", "feature_", "slot_")

_WORD = re.compile(r"[A-Za-z0-9]+")


def derived_name(text: str) -> str | None:
    """``views("Electronics", 24h)`` -> ``views_electronics_24h``; None when that would not read well."""
    if not text.isascii():
        return None
    name = "_".join(_WORD.findall(text)).lower()
    if not name or name[0].isdigit() or len(name) > MAX_NAME_LENGTH:
        return None
    return name


class Namer:
    """Hands out distinct identifiers, first come first served."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def name(self, text: str, prefix: str, index: int) -> str:
        """An identifier for ``text``: derived from it, with ``_index`` appended when that is taken;
        ``prefix_index`` when the text gives no readable name."""
        derived = derived_name(text)
        if derived is None or derived.startswith(RESERVED_PREFIXES):
            name = f"{prefix}_{index}"
        else:
            name = derived if self._free(derived) else f"{derived}_{index}"
        base, again = name, 2
        while not self._free(name):
            name = f"{base}_{again}"
            again += 1
        self._taken.add(name)
        return name

    def _free(self, name: str) -> bool:
        return not (
            name in self._taken
            or name in GENERATED_NAMES
            or keyword.iskeyword(name)
            or keyword.issoftkeyword(name)
            or hasattr(builtins, name)
        )
