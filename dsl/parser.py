"""Source text to a typed AST: the language's parse functions.

The tokens go to the grammar's LALR parser (``lalr_driver``), whose
reductions build the AST directly (``tree_builder``). After a syntax error the
token stream is re-parsed one declaration at a time so that every independent
mistake in a file is reported, not only the first. A declaration whose
expression nests deeper than the language allows (``nesting``) is reported
and left out, like one with a syntax error.
"""

from __future__ import annotations

from bisect import bisect_left

from lark import UnexpectedInput, UnexpectedToken

from . import ast
from .collector import collector_paused
from .diagnostics import Diagnostic, RulesError, error, sorted_unique
from .lalr_driver import lalr_driver
from .nesting import nesting_problem, within_nesting_limit
from .source import Source, Span
from .syntax_errors import NAME_EXPECTED_AFTER, syntax_error
from .tokenizer import DECLARATION_STARTS, Token, tokenize
from .tree_builder import TreeBuilder


def parse_source(source: Source) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse what can be parsed; return the module and every problem found.

    Declarations with a syntax error, or with an expression nested too
    deeply, are left out of the module, so later stages can still check the
    rest of the file.
    """
    with collector_paused():  # the tokens are as many objects as the tree's nodes
        lexed = tokenize(source)
        comments = tuple(ast.Comment(c.value, Span(source, c.start_pos, c.end_pos)) for c in lexed.comments)
        problems: list[Diagnostic] = list(lexed.diagnostics)
        parser = lalr_driver().bind(TreeBuilder(source, problems))
        try:
            declarations = parser.parse(lexed.tokens, "start")
        except UnexpectedInput:
            declarations = []
            # A declaration with a lexical error (say, a string never closed that
            # swallowed the rest of its line) gets no second, consequential error.
            lexical = [problem.span.start for problem in lexed.diagnostics]
            chunks = _declaration_chunks(lexed.tokens)
            for index, chunk in enumerate(chunks):
                try:
                    declarations.extend(parser.parse(chunk, "start"))
                except UnexpectedToken as exc:
                    following = chunks[index + 1][0] if index + 1 < len(chunks) else None
                    problem = syntax_error(source, exc, chunk, following)
                    first = bisect_left(lexical, chunk[0].start_pos)
                    if first == len(lexical) or lexical[first] > problem.span.start:
                        problems.append(problem)
        declarations = within_nesting_limit(declarations, problems)
    module = ast.Module(tuple(declarations), source.name, comments)
    return module, sorted_unique(problems)


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse one file's text into a module; raise ``RulesError`` on any syntax error."""
    module, problems = parse_source(Source(filename, text))
    if problems:
        raise RulesError(problems)
    return module


def parse_expression(text: str, filename: str = "<expression>") -> ast.Expr:
    """Parse one expression (a model's input feature, say); raise ``RulesError`` on errors."""
    source = Source(filename, text)
    lexed = tokenize(source)
    problems: list[Diagnostic] = list(lexed.diagnostics)
    expr = None
    try:
        expr = lalr_driver().bind(TreeBuilder(source, problems)).parse(lexed.tokens, "expression")
    except UnexpectedToken as exc:
        problems.append(syntax_error(source, exc, lexed.tokens or [Token("$END", "", 0, 0)], None))
    except UnexpectedInput as exc:  # an empty text
        problems.append(error(f"not an expression: {exc}", Span(source, 0, len(text)), code="syntax"))
    if expr is not None and (too_deep := nesting_problem(expr)) is not None:
        problems.append(too_deep)
    if problems or expr is None:
        raise RulesError(problems)
    return expr


def _declaration_chunks(tokens: list[Token]) -> list[list[Token]]:
    """The tokens cut where each declaration starts, so that each can be parsed on its own."""
    chunks: list[list[Token]] = []
    current: list[Token] = []
    for token in tokens:
        starts = token.type in DECLARATION_STARTS and current
        if starts and current[-1].type in NAME_EXPECTED_AFTER:
            starts = False
        if starts and token.type == "WHEN" and len(current) == 2 and current[0].type == "RULE":
            starts = False
        if starts:
            chunks.append(current)
            current = []
        current.append(token)
    if current:
        chunks.append(current)
    return chunks
