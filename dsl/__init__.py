"""The rules language: tokens, grammar, syntax tree, formatter and diagnostics."""
