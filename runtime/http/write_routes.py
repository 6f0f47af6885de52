"""``POST /v1/events`` and ``POST /v1/feedback`` on the short path ``/v1/decide`` takes (``decide_route.py``).

Besides the store, a batch's cost is its items going through the framework:
FastAPI parses the body with the standard library's JSON and then validates
it item by item, on top of its routing and each middleware's wrapping, all in
one go while every other request waits. A short path parses and validates a
well-formed batch in one step with the same request model the route declares
(``EventsRequest``, ``FeedbackRequest``), takes it with the same function,
and writes the answer as one message. Anything else goes on to the route,
which answers it as OpenAPI describes (401, 413, 422 with the reason);
failures are answered by the app's handlers, as from the route.
"""

from __future__ import annotations

from .decide_route import DecideShortPath
from .schemas import EventsRequest, FeedbackRequest


class EventsShortPath(DecideShortPath):
    """``DecideShortPath`` for ``POST /v1/events``: its ``decide`` is the route's function of the batch."""

    path = "/v1/events"
    model = EventsRequest


class FeedbackShortPath(DecideShortPath):
    """``DecideShortPath`` for ``POST /v1/feedback``: its ``decide`` is the route's function of the batch."""

    path = "/v1/feedback"
    model = FeedbackRequest
