"""Free ports on the loopback address, for the servers the benchmarks and the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on now; the operating system picks it, so parallel runs do not collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
