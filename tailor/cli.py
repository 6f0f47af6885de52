"""The ``tailor`` command line: the top-level parser over the commands in ``tailor.commands``.

Each command is one module there, named for it. Exit codes follow the usual
convention of linters and formatters (see ``tailor.commands.exit_codes``): 0
when all is well, 1 when the input has problems, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tailor.commands import compile as compile_
from tailor.commands import (
    completion,
    diff,
    experiments,
    explain,
    fmt,
    ingest,
    kpis,
    lint,
    log,
    migrate_store,
    models,
    promote,
    report,
    retrain,
    serve,
    simulate,
    stats,
    test,
    train,
)
from tailor.commands.exit_codes import EXIT_OK
from tailor.commands.parser import Parser

# In the order --help lists them.
COMMANDS = (
    lint,
    fmt,
    compile_,
    serve,
    ingest,
    log,
    stats,
    kpis,
    experiments,
    models,
    migrate_store,
    test,
    explain,
    report,
    diff,
    simulate,
    train,
    promote,
    retrain,
    completion,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tailor", description="Personalization rules: lint, format, compile and serve them.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers).set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
