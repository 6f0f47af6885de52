"""How the API writes its answers: JSON by orjson, and one shape for every error."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response


class OrjsonResponse(JSONResponse):
    """JSON written by orjson: several times faster than the standard library for decision bodies."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_response(
    status: int, detail: str, errors: list[str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    """``{"detail": ..., "errors": [...]}``: what every failure answers (``ErrorResponse`` in the schema)."""
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return OrjsonResponse(body, status_code=status, headers=headers)
