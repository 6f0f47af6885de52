"""Asking a running server: JSON over HTTP, with the API key a command was given."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tailor.runtime.log_dataset import JoinLookup


def api_key(args: argparse.Namespace) -> str | None:
    """``--api-key``, else ``$TAILOR_API_KEY``; None when neither is set."""
    return args.api_key or os.environ.get("TAILOR_API_KEY") or None


class ServerError(Exception):
    """A server did not answer as asked (the reason is printed already)."""


def joined_lookup(url: str, key: str | None) -> JoinLookup:
    """A ``JoinLookup`` over a running server's ``POST /v1/feedback/joined``; ``ServerError`` when it fails."""
    from tailor.runtime.feedback import Join

    endpoint = url.rstrip("/") + "/v1/feedback/joined"

    def joined(decision_ids: Sequence[str]) -> dict[str, Join]:
        data = server_json(endpoint, {"decision_ids": list(decision_ids)}, key)
        if not isinstance(data, dict) or not isinstance(data.get("decisions"), list):
            raise ServerError(endpoint)
        return {entry["decision_id"]: Join.from_dict(entry) for entry in data["decisions"]}

    return joined


def server_json(url: str, body: object | None, api_key: str | None) -> object | None:
    """GET (or, with a body, POST) JSON from a running server; None after printing why it failed."""
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        print(f"tailor: {url}: the server answered {exc.code} {exc.reason}: {detail}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"tailor: {url}: cannot reach the server ({reason})", file=sys.stderr)
    except ValueError:
        print(f"tailor: {url}: the answer is not JSON", file=sys.stderr)
    return None
