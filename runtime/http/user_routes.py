"""The routes of one user's stored data: set their profile, erase everything about them, export it.

``add_user_routes`` adds them to the app ``create_app`` builds (``app.py``); what
erasure and export cover is ``erasure.py``'s (see docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from ..erasure import Erasure
from ..service import DecisionService
from .middleware import error_responses
from .responses import OrjsonResponse
from .schemas import IdInPath, ProfileRequest, ProfileResponse, UserErasureResponse, UserExportResponse


def add_user_routes(
    app: FastAPI, service: DecisionService, erasure: Erasure, *, guard: list[Any], auth: tuple[int, ...]
) -> None:
    """``PUT`` and ``DELETE /v1/users/{user_id}``, and ``GET /v1/users/{user_id}/export``, behind ``guard``."""

    @app.put(
        "/v1/users/{user_id:path}",
        response_model=ProfileResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary="Set (or, with null, delete) profile attributes",
    )
    async def set_profile(user_id: IdInPath, body: ProfileRequest) -> Response:
        await service.set_profile(user_id, body.attributes)
        deleted = sum(value is None for value in body.attributes.values())
        return OrjsonResponse({"user_id": user_id, "updated": len(body.attributes) - deleted, "deleted": deleted})

    @app.delete(
        "/v1/users/{user_id:path}",
        response_model=UserErasureResponse,
        dependencies=guard,
        responses=error_responses(*auth, 422, 503),
        tags=["data"],
        summary="Erase everything stored about a user (see docs/privacy.md); erasing twice is harmless",
    )
    async def erase_user(user_id: IdInPath) -> Response:
        return OrjsonResponse((await erasure.erase(user_id)).to_dict())

    @app.get(
        "/v1/users/{user_id:path}/export",
        response_model=UserExportResponse,
        dependencies=guard,
        responses=error_responses(*auth, 422, 503),
        tags=["data"],
        summary="Everything stored about a user, as JSON (empty for a user nothing is stored about)",
    )
    async def export_user(user_id: IdInPath) -> Response:
        return OrjsonResponse((await erasure.export(user_id)).to_dict())
