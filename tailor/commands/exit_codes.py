"""The exit codes every command returns.

They follow the usual convention of linters and formatters: 0 when all is
well, 1 when the input has problems (errors, or files ``fmt --check`` would
change), 2 for a usage error such as a path that does not exist.
"""

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
