"""How a model file may be read: a regular file, no larger than a cap, read within a time limit.

A ``model`` line can name anything: a FIFO that blocks its reader forever,
``/dev/zero`` that never ends, a file on a network mount that stopped
answering. Bounding the read turns each into an error on the model line
instead of a reload that hangs or exhausts memory. The limits live apart
from ``onnx_models`` so that setting them does not load onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MODEL_READ_TIMEOUT = 5.0  # seconds


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """The most bytes a model file may hold, and the seconds reading it may take."""

    max_bytes: int = DEFAULT_MODEL_MAX_BYTES
    read_timeout: float = DEFAULT_MODEL_READ_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.read_timeout <= 0:
            raise ValueError("model limits must be positive")


DEFAULT_MODEL_LIMITS = ModelLimits()
