"""The argument parser of ``tailor`` and of each of its commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence


class Parser(argparse.ArgumentParser):
    """Shows examples under each command's help, and takes defaults from modules too slow to import up front."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._pending_defaults: list[Callable[[], Mapping[str, str]]] = []

    def defaults_from(self, load: Callable[[], Mapping[str, str]]) -> None:
        """Set the defaults ``load`` returns when this parser first parses or shows its help, not before.

        The runtime defines most defaults, some in modules that import FastAPI
        or numpy: a command reads them only when it is used, so ``tailor
        --help`` stays quick. Each default is given as it would be typed
        (``typed``): argparse reads it like a value given on the command line,
        and ``%(default)s`` in a help text shows it that way.
        """
        self._pending_defaults.append(load)

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._load_defaults()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load_defaults()
        return super().format_help()

    def _load_defaults(self) -> None:
        while self._pending_defaults:
            self.set_defaults(**self._pending_defaults.pop(0)())


def typed(value: int | float | str) -> str:
    """A default as one would type it, which argparse reads back to the same value: 50.0 as 50, 0.2 as 0.2."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
