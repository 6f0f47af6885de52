"""``tailor completion``: print a bash or zsh completion script."""

from __future__ import annotations

import argparse

from .exit_codes import EXIT_OK
from .parser import Parser


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh (commands, options, file names).",
        epilog='example:\n  eval "$(tailor completion bash)"   # in ~/.bashrc\n'
        '  eval "$(tailor completion zsh)"    # in ~/.zshrc',
    )
    parser.add_argument("shell", choices=("bash", "zsh"))
    parser.set_defaults(subcommands=subparsers)  # what the script completes: every command, as registered
    return parser


def run(args: argparse.Namespace) -> int:
    """Generated from the parser itself, so it never lists a command or option that is gone."""
    commands: argparse._SubParsersAction[Parser] = args.subcommands
    cases = []
    for name, sub in commands.choices.items():
        options = sorted(o for action in sub._actions for o in action.option_strings)
        cases.append(f'    {name}) opts="{" ".join(options)}" ;;')
    script = "\n".join(
        [
            "_tailor() {",
            '  local cur="${COMP_WORDS[COMP_CWORD]}" opts=""',
            '  if [ "$COMP_CWORD" -eq 1 ]; then',
            f'    COMPREPLY=($(compgen -W "{" ".join(commands.choices)} --help" -- "$cur"))',
            "    return",
            "  fi",
            '  case "${COMP_WORDS[1]}" in',
            *cases,
            "  esac",
            '  if [[ "$cur" == -* ]]; then',
            '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
            "  else",
            '    COMPREPLY=($(compgen -f -- "$cur"))',
            "  fi",
            "}",
            "complete -o filenames -F _tailor tailor",
        ]
    )
    if args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    print(script)
    return EXIT_OK
