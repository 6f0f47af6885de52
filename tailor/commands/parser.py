"""The argument parser of ``tailor`` and of each of its commands."""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """Shows examples under each command's help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
