"""Durations on the command line, written as in rules: 90s, 30m, 24h, 7d, 2w."""

from __future__ import annotations

import argparse

from tailor.dsl.ast import DURATION_UNITS
from tailor.dsl.printer import duration_text

MIN_RETENTION = 86400.0  # the event store keeps day buckets: a shorter --retention is refused
RETENTION_TOO_SHORT = f"--retention must be at least {duration_text(MIN_RETENTION)}"


def duration(text: str) -> float:
    """Seconds from a duration written as in rules: 90s, 30m, 24h, 7d, 2w."""
    number, unit = text[:-1], text[-1:]
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h or 2w") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero, and finite")
    return seconds
