"""The HTTP API over a ``DecisionService``.

``schemas`` holds the request models, their limits and the response models
(derived from the dataclasses that write each response); ``middleware`` the
body limit, the API key and the error answers; ``app`` the routes.
"""

from .app import create_app

__all__ = ["create_app"]
