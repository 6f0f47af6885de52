"""The HTTP API over a ``DecisionService``.

``schemas`` holds the request models, their limits and the response models
(derived from the dataclasses that write each response); ``middleware`` the
body limit, the API key and the error answers; ``app`` the routes;
``console_routes`` the browser console's page (``console/``) and the endpoints
it needed, with their bodies in ``console_schemas``.
"""

from .app import create_app

__all__ = ["create_app"]
