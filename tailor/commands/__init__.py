"""The commands of the ``tailor`` command line, one module each.

Each module has ``add_parser(subparsers)``, which registers the command with
its options, help and defaults, and ``run(args)``, which returns the exit code
(see ``exit_codes``). ``tailor.cli`` lists them in ``COMMANDS``.

A default is read where the runtime defines it, never restated. What is slow
to import (the server, ONNX Runtime, LightGBM) is imported inside ``run``, and
defaults defined there are read through ``Parser.defaults_from`` only when
their command is used, so that ``tailor --help`` stays quick.
"""
