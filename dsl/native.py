"""Whether the package's C helpers run, one switch for all of them.

The helpers (``dsl/_tokens.c``, ``dsl/_lalr.c``, ``compiler/_stage1.c``, ``compiler/_bucketing.c``) are built by the
package's install where a C compiler is found; each stands in for Python that computes exactly the same
thing, which runs when a helper is not built, or everywhere with ``TAILOR_NO_NATIVE=1`` in the
environment, so that tests exercise both.
"""

from __future__ import annotations

import os

NO_NATIVE = "TAILOR_NO_NATIVE"  # set to 1: the Python runs instead of every C helper


def allowed() -> bool:
    """Whether the environment lets built helpers run."""
    return os.environ.get(NO_NATIVE, "") in ("", "0")
