"""How a name (a user, an event type, a key, a decision or feedback id) becomes part of a Redis key."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what ``quote`` leaves as it is


def key_part(name: str) -> str:
    """``name`` percent-encoded, so that a key's separators (``:``, ``{``, ``}``) never occur in a part.

    The same text as ``quote(name, safe="")``; most names need no encoding, and
    telling so is several times cheaper than encoding (keys are built per event).
    """
    return name if _UNRESERVED.fullmatch(name) else quote(name, safe="")
