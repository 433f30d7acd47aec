"""Splitting a SQL file into statements, so each one's rows and timing can be reported.

PostgreSQL's own parser does the splitting (pglast wraps libpg_query, which compiles the
server's grammar and lexer): whatever a `;` can hide in — quoted strings, E'' and U&'' strings,
quoted identifiers, nested comments, dollar-quoted bodies, BEGIN ATOMIC bodies, the action list
of CREATE RULE — is known exactly, and a file that does not parse is refused before any of it
runs. The comments just before a statement stay with it, as a person reading the file sees them.
"""

from __future__ import annotations

from pglast.parser import ParseError, get_postgresql_version, scan, split

from eventgate.errors import BundleError

# Tokens of the lexer that are not code.
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_SEMICOLON = "ASCII_59"
GRAMMAR = f"PostgreSQL {get_postgresql_version()[0]}"


def split_statements(sql: str, source: str = "the script") -> list[str]:
    """The top-level statements of a script, without their terminating semicolons, each with
    the comments written just before it. `source` names the file in a syntax error."""
    try:
        pieces = split(sql, only_slices=True)
    except ParseError as exc:
        raise _syntax_error(sql, source, exc) from None
    statements = []
    previous_end = 0
    for piece in pieces:
        # Between two statements lie only blanks, comments and semicolons (empty statements):
        # the statement's text starts after the last semicolon there.
        gap = sql[previous_end:piece.start]
        semicolons = [t.end + 1 for t in scan(gap) if t.name == _SEMICOLON]
        start = previous_end + (semicolons[-1] if semicolons else 0)
        statements.append(sql[start:piece.stop].strip())
        previous_end = piece.stop
    return statements


def _syntax_error(sql: str, source: str, exc: ParseError) -> BundleError:
    """Where the parser stopped, as a line and column of the file, and what it said."""
    message = str(exc.args[0])
    index = exc.args[1] if len(exc.args) > 1 else None
    where = ""  # stays empty when the parser ran out of input: its message says so
    if index is not None:
        line_start = sql.rfind("\n", 0, index) + 1
        line_end = sql.find("\n", index)
        text = sql[line_start:line_end if line_end >= 0 else len(sql)]
        line = sql.count("\n", 0, index) + 1
        where = f", at line {line}, column {index - line_start + 1} (`{_shorten(text)}`)"
    return BundleError(f"{source} is not valid SQL to the {GRAMMAR} parser: {message}{where}; "
                       "none of it was run: fix the SQL there and run again")


def without_leading_comments(statement: str) -> str:
    """The statement from its first token of code on: the comments before it left out."""
    try:
        tokens = scan(statement)
    except ParseError:  # not something split_statements gave; keep it as it is
        return statement.strip()
    first = next((t for t in tokens if t.name not in _COMMENTS), None)
    return "" if first is None else statement[first.start:].strip()


def summary(statement: str, width: int = 72) -> str:
    """The statement's first line of code, for progress and reports."""
    code = without_leading_comments(statement) or statement.strip()
    return _shorten(code.splitlines()[0] if code else "", width)


def _shorten(line: str, width: int = 72) -> str:
    line = line.strip()
    return line if len(line) <= width else line[: width - 1] + "…"
