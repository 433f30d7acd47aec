"""Splitting a migration file into statements, so each one's rows and timing can be reported.

Understands what PostgreSQL lets a `;` hide in: quoted strings (standard and E''), quoted
identifiers, line and nested block comments, and dollar-quoted bodies.
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")
# SQL-standard function bodies (BEGIN ATOMIC ... END) hold top-level semicolons; inside them,
# CASE ... END nests, so both are counted.
_ATOMIC_OPEN = re.compile(r"BEGIN\s+ATOMIC\b", re.I)
_NESTING_OPEN = re.compile(r"CASE\b", re.I)
_NESTING_CLOSE = re.compile(r"END\b", re.I)


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the quoted run starting at sql[i] (the opening quote)."""
    i += 1
    while i < len(sql):
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _is_blank(statement: str) -> bool:
    """True when a piece holds only whitespace and comments."""
    without = re.sub(r"--[^\n]*", "", statement)
    without = re.sub(r"/\*.*?\*/", "", without, flags=re.S)
    return not without.strip()


def split_statements(sql: str) -> list[str]:
    """The top-level statements of a script, without their terminating semicolons."""
    statements: list[str] = []
    start = i = 0
    atomic_depth = 0
    while i < len(sql):
        ch = sql[i]
        at_word = ch.isalpha() and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_$"))
        opener = _NESTING_OPEN if atomic_depth else _ATOMIC_OPEN
        if at_word and (match := opener.match(sql, i) or _ATOMIC_OPEN.match(sql, i)):
            atomic_depth += 1
            i = match.end()
        elif at_word and atomic_depth and (match := _NESTING_CLOSE.match(sql, i)):
            atomic_depth -= 1
            i = match.end()
        elif ch == "'":
            escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            i = _skip_quoted(sql, i, "'", backslash=escaped)
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = len(sql) if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "$" and (match := _DOLLAR_TAG.match(sql, i)) and not (
            i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")
        ):
            tag = match.group(0)
            end = sql.find(tag, match.end())
            i = len(sql) if end < 0 else end + len(tag)
        elif ch == ";" and not atomic_depth:
            statements.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if not _is_blank(s)]


def summary(statement: str, width: int = 72) -> str:
    """The statement's first meaningful line, for progress and reports."""
    for line in statement.splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line if len(line) <= width else line[: width - 1] + "…"
    return statement[:width]
