"""KEY=VALUE options, such as ``--context page=home`` and ``--feature p_click=0.8``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence


def assignments(items: Sequence[str], option: str) -> dict[str, object] | None:
    """KEY=VALUE pairs; a VALUE that is JSON is read as JSON, anything else is text.

    A feature's text may itself hold ``=`` (``context.device == "mobile"``), so
    ``--feature`` splits at the last one. None after printing which item is not
    KEY=VALUE.
    """
    result: dict[str, object] = {}
    for item in items:
        key, equal, text = item.rpartition("=") if option == "--feature" else item.partition("=")
        if not equal or not key.strip():
            print(f"tailor: {option} {item!r} is not KEY=VALUE", file=sys.stderr)
            return None
        try:
            value: object = json.loads(text)
        except ValueError:
            value = text
        result[key.strip()] = value
    return result
