"""The error training stops with, in a module of its own so that every step of training can raise it.

The log, the features, the replay, the export and the fit all raise it;
``tailor train`` prints its message and hint and exits with 1.
"""

from __future__ import annotations

from .onnx_models import HintedError


class TrainError(HintedError):
    """Training cannot go on."""
