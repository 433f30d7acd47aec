"""A migration script in phases: the `-- eventgate:` lines that let the runner run one migration
online, as several transactions, and undo it part-way (docs/online-migrations.md).

    -- eventgate:phase NAME [lock_timeout_ms=N]      the statements up to the next line: one
                                                     transaction
    -- eventgate:backfill table=T key=K [rows=N] [pause_ms=N] [lock_timeout_ms=N] [guard=F]
                                                     one statement, run once per batch of keys
                                                     of T, each batch its own transaction, with
                                                     the settings eventgate.batch_after < K and
                                                     K <= eventgate.batch_upto; with guard=F,
                                                     the function F(after, upto) is called in
                                                     the batch's transaction before it (the
                                                     statement's snapshot is taken after F's
                                                     locks are held); an INSERT ... ON CONFLICT
                                                     DO NOTHING is tried first without that
                                                     clause, and a batch it fails on runs again
                                                     as written
    -- eventgate:concurrently NAME [lock_timeout_ms=N]
                                                     each statement its own transaction, for
                                                     what cannot run in one: CREATE INDEX
                                                     CONCURRENTLY IF NOT EXISTS, a foreign key
                                                     added NOT VALID then VALIDATEd; a rerun
                                                     first drops the INVALID indexes it names,
                                                     then runs every statement again, so each
                                                     must be safe to run twice
    -- eventgate:abort NAME [lock_timeout_ms=N]      a transaction of the undo of a run stopped
                                                     before its last phase; never run forwards

A script without these lines is one phase: the whole file in one transaction, as before. The
annotations are comments to PostgreSQL, so the file still runs as it is in psql (in one go)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.enums import OnConflictAction
from pglast.stream import RawStream

from eventgate.bundle import SqlFile
from eventgate.errors import BundleError
from eventgate.migrate.statements import split_statements

_DIRECTIVE = re.compile(r"^--\s*eventgate:(?P<kind>[a-z]+)\b(?P<rest>.*)$", re.MULTILINE)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_FUNCTION = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")  # guard=: schema.name
_OPTIONS = {
    "phase": {"lock_timeout_ms"},
    "concurrently": {"lock_timeout_ms"},
    "abort": {"lock_timeout_ms"},
    "backfill": {"table", "key", "rows", "pause_ms", "lock_timeout_ms", "guard"},
}
_INTEGERS = {"rows", "pause_ms", "lock_timeout_ms"}
BOUNDS = ("eventgate.batch_after", "eventgate.batch_upto")


@dataclass(frozen=True)
class Phase:
    name: str
    kind: str  # transaction | phase | backfill | concurrently | abort
    statements: tuple[str, ...]
    line: int
    lock_timeout_ms: int | None = None
    table: str | None = None
    key: str | None = None
    rows: int = 5000
    pause_ms: int = 0
    guard: str | None = None  # a backfill's F(after, upto), called before each batch
    # A backfill's INSERT without its ON CONFLICT DO NOTHING: what a batch tries first, since
    # the arbiter check costs a fifth of a batch and a conflict (a row a trigger carried before
    # the batch got to it) is rare; a batch that meets one runs again as written.
    first_try: str | None = None
    # A concurrently phase: its statements as a dry run runs them, in its one transaction
    # (CONCURRENTLY taken out), and the indexes (schema or None, name) they build.
    in_transaction: tuple[str, ...] = ()
    indexes: tuple[tuple[str | None, str], ...] = ()

    @property
    def title(self) -> str:
        return f"backfill {self.table}" if self.kind == "backfill" else self.name


@dataclass(frozen=True)
class PhasedScript:
    label: str
    forward: tuple[Phase, ...]
    abort: tuple[Phase, ...]

    @property
    def online(self) -> bool:
        """Run as several transactions (it has phases), not as one."""
        return len(self.forward) > 1 or bool(self.abort)

    def phase(self, name: str) -> Phase:
        for phase in self.forward:
            if phase.name == name:
                return phase
        raise BundleError(f"{self.label} has no phase {name!r} (it has "
                          f"{', '.join(p.name for p in self.forward)}); was it edited while a "
                          "run of it was part-way?")

    def after(self, name: str) -> tuple[Phase, ...]:
        """The phases from `name` on."""
        names = [p.name for p in self.forward]
        return self.forward[names.index(self.phase(name).name):]


def read_phases(script: SqlFile) -> PhasedScript:
    sql = script.sql
    marks = list(_DIRECTIVE.finditer(sql))
    if not marks:
        return PhasedScript(script.label, (_phase(script, "all", "transaction", {}, sql, 1),), ())
    head = split_statements(sql[:marks[0].start()], script.label)
    if head:
        raise _error(script, 1, "statements come before the first `-- eventgate:` line; put them "
                     "in a phase")
    forward: list[Phase] = []
    abort: list[Phase] = []
    for n, mark in enumerate(marks):
        line = sql.count("\n", 0, mark.start()) + 1
        kind, words = mark["kind"], mark["rest"].split()
        if kind not in _OPTIONS:
            raise _error(script, line, f"unknown annotation eventgate:{kind} (known: "
                         f"{', '.join(sorted(_OPTIONS))})")
        name = words.pop(0) if kind != "backfill" and words and "=" not in words[0] else None
        options = _options(script, line, kind, words)
        if kind != "backfill" and name is None:
            raise _error(script, line, f"eventgate:{kind} needs a name")
        end = marks[n + 1].start() if n + 1 < len(marks) else len(sql)
        # Padded with the lines before it, so a syntax error names the file's own line.
        body = "\n" * (line - 1) + sql[mark.end():end]
        if kind == "backfill":
            name = f"backfill:{options.get('table')}"
        assert name is not None
        phase = _phase(script, name, "abort" if kind == "abort" else kind, options, body, line)
        if kind == "abort":
            abort.append(phase)
        elif abort:
            raise _error(script, line, "forward phases come before the abort phases")
        else:
            forward.append(phase)
    names = [p.name for p in forward + abort]
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise _error(script, 1, f"phase names used twice: {', '.join(twice)}")
    for edge in (forward[0], forward[-1]) if forward else ():
        if edge.kind in ("backfill", "concurrently"):
            raise _error(script, edge.line, f"a {edge.kind} phase can be neither the first phase "
                         "(whose transaction records that the run began) nor the last (whose "
                         "transaction records it in the ledger)")
    return PhasedScript(script.label, tuple(forward), tuple(abort))


def _options(script: SqlFile, line: int, kind: str, words: list[str]) -> dict[str, str | int]:
    options: dict[str, str | int] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in _OPTIONS[kind]:
            raise _error(script, line, f"eventgate:{kind} does not take `{word}` (it takes "
                         f"{', '.join(sorted(_OPTIONS[kind]))}, as key=value)")
        if key in _INTEGERS:
            if not value.isdigit() or (key == "rows" and int(value) == 0):
                raise _error(script, line, f"{key} must be a whole number"
                             + (" above 0" if key == "rows" else "") + f", not {value!r}")
            options[key] = int(value)
        elif not (_FUNCTION if key == "guard" else _IDENTIFIER).match(value):
            raise _error(script, line, f"{key}={value} is not a plain lower-case identifier"
                         + (" (or schema.name)" if key == "guard" else ""))
        else:
            options[key] = value
    if kind == "backfill":
        missing = [k for k in ("table", "key") if k not in options]
        if missing:
            raise _error(script, line, f"eventgate:backfill needs {' and '.join(missing)}=")
    return options


def _phase(script: SqlFile, name: str, kind: str, options: dict[str, str | int], body: str,
           line: int) -> Phase:
    statements = tuple(split_statements(body, script.label))
    if not statements:
        raise _error(script, line, f"phase {name} has no statement")
    if kind == "backfill":
        if len(statements) != 1:
            raise _error(script, line, f"a backfill is one statement; {name} has "
                         f"{len(statements)}")
        if not all(bound in statements[0] for bound in BOUNDS):
            raise _error(script, line, f"{name} does not read {' and '.join(BOUNDS)}: every "
                         "batch would copy the whole table")
    in_transaction, indexes = _outside_a_transaction(script, name, statements, line) \
        if kind == "concurrently" else ((), ())
    first_try = _without_do_nothing(statements[0]) if kind == "backfill" else None
    lock_timeout = options.get("lock_timeout_ms")
    return Phase(
        name=name, kind=kind, statements=statements, line=line,
        lock_timeout_ms=int(lock_timeout) if lock_timeout is not None else None,
        table=str(options["table"]) if "table" in options else None,
        key=str(options["key"]) if "key" in options else None,
        rows=int(options.get("rows", 5000)), pause_ms=int(options.get("pause_ms", 0)),
        guard=str(options["guard"]) if "guard" in options else None,
        in_transaction=in_transaction, indexes=indexes, first_try=first_try)


def _without_do_nothing(statement: str) -> str | None:
    """The INSERT without its ON CONFLICT DO NOTHING, or None when it has none: it inserts
    the same rows when nothing conflicts, and fails whole (unique_violation) when anything
    does, so that trying it first never changes what a batch copies."""
    node = parse_sql(statement)[0].stmt
    if not isinstance(node, ast.InsertStmt):
        return None
    clause = node.onConflictClause
    if clause is None or clause.action != OnConflictAction.ONCONFLICT_NOTHING:
        return None
    node.onConflictClause = None
    return str(RawStream()(node))


def _outside_a_transaction(script: SqlFile, name: str, statements: tuple[str, ...], line: int
                           ) -> tuple[tuple[str, ...], tuple[tuple[str | None, str], ...]]:
    """A concurrently phase's statements as one transaction runs them, and the indexes it
    builds; a CREATE INDEX that a rerun or a live writer could not live with is refused."""
    in_transaction: list[str] = []
    indexes: list[tuple[str | None, str]] = []
    for statement in statements:
        node = parse_sql(statement)[0].stmt
        if isinstance(node, ast.TransactionStmt):
            raise _error(script, line, f"phase {name} runs each statement in a transaction of "
                         "its own; it cannot hold BEGIN, COMMIT or ROLLBACK")
        if not isinstance(node, ast.IndexStmt):
            in_transaction.append(statement)
            continue
        if not (node.concurrent and node.if_not_exists and node.idxname):
            raise _error(script, line, f"phase {name} builds indexes as CREATE INDEX "
                         "CONCURRENTLY IF NOT EXISTS name ...: without CONCURRENTLY the build "
                         "blocks every writer of the table, and without IF NOT EXISTS and a "
                         "name a resumed run fails on the index the first run built")
        assert node.relation is not None
        indexes.append((node.relation.schemaname, node.idxname))
        node.concurrent = False
        in_transaction.append(RawStream()(node))
    return tuple(in_transaction), tuple(indexes)


def _error(script: SqlFile, line: int, what: str) -> BundleError:
    return BundleError(f"{script.label}, line {line}: {what}; nothing was run")
