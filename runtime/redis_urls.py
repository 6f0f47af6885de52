"""Redis URLs as tailor takes them: which are Redis URLs at all, and how one may be shown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")  # what redis-py connects to: TCP, TLS, a Unix socket


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Redis URL, or None: with a wrong one every decision would be degraded."""
    if is_redis_url(url):
        return None
    shown = without_password(url) if "://" in url else url
    *others, last = (f"{name}://" for name in REDIS_SCHEMES)
    accepted = f"{', '.join(others)} or {last}"
    return f"{shown!r} is not a Redis URL: it must start with {accepted} (like redis://localhost:6379/0)"


def is_redis_url(text: str) -> bool:
    """Whether ``text`` names a Redis (rather than, say, a directory)."""
    return "://" in text and urlsplit(text).scheme in REDIS_SCHEMES


def without_password(url: str) -> str:
    """The URL as it may appear in a log: no user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
