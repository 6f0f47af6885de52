"""The commands of the ``tailor`` command line, one module each.

Each module has ``add_parser(subparsers)``, which registers the command with
its options, help and defaults, and ``run(args)``, which returns the exit code
(see ``exit_codes``). ``tailor.cli`` lists them in ``COMMANDS``. A module
imports what is slow to import (the server, ONNX Runtime, LightGBM) inside
``run``, so that ``tailor --help`` stays quick.
"""
