"""The lock-hazard lint: squawk, the field's migration linter, read over every migration and
rollback script of the bundle, without a database.

squawk knows which statements take which locks (an index built without CONCURRENTLY blocks
writes, a column type change rewrites the table, ...). Its findings are held to the bundle's
waivers (expectations.toml [[lint.waivers]], each with its reason): every finding not waived
fails the gate, and so does a waiver that covers no finding, since a stale waiver only rots.
squawk lints each file as the runner executes it, inside one transaction
(--assume-in-transaction), for the PostgreSQL version of [lint] pg_version."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventgate.bundle import Bundle, LintWaiver
from eventgate.checks.result import CheckResult
from eventgate.errors import EventgateError
from eventgate.migrate.statements import split_statements

CHECK = "lock-hazard lint"
MAX_DETAILS = 40  # a broken file can give squawk hundreds of findings
MAX_RELINTS = 5  # passes over a file squawk cannot parse, each blanking what it refused


@dataclass(frozen=True)
class Finding:
    file: str  # relative to the bundle root
    line: int  # 1-based, as an editor shows it
    column: int
    rule: str
    message: str
    help: str
    statement: str  # the whole statement the line belongs to, for the waivers

    def describe(self) -> str:
        hint = f" ({self.help})" if self.help else ""
        return f"{self.file}:{self.line}:{self.column} {self.rule}: {self.message}{hint}"


def squawk_binary() -> Path:
    """squawk next to the running interpreter (the venv pip installed squawk-cli into), else
    on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return beside
    on_path = shutil.which("squawk")
    if on_path:
        return Path(on_path)
    raise EventgateError(f"the lock-hazard lint needs squawk, found neither at {beside} nor on "
                         "PATH; install it with `pip install squawk-cli` (a dependency of "
                         "eventgate)")


def lint_files(bundle: Bundle) -> list[str]:
    """Every migration and rollback script, relative to the bundle root, in run order."""
    files = []
    for migration in bundle.migrations:
        for script in (migration, migration.rollback):
            if script is not None:
                # migrations/ or rollback/ and the name: the bundle's layout, however
                # the bundle's own path was given
                files.append(f"{script.path.parent.name}/{script.path.name}")
    return files


def squawk_arguments(bundle: Bundle) -> list[str]:
    """squawk's options: JSON findings, one transaction per file as the runner runs it, and no
    .squawk.toml from around the bundle (a rule is waived in expectations.toml, with a reason,
    or not at all)."""
    version = bundle.expectations.lint_pg_version
    return (["--config", os.devnull, "--assume-in-transaction"]
            + ([f"--pg-version={version}"] if version else []))


def reproduce_command(bundle: Bundle) -> str:
    return (f"cd {shlex.quote(str(bundle.root))} && squawk "
            + shlex.join(squawk_arguments(bundle) + lint_files(bundle)))


def run_squawk(bundle: Bundle, paths: list[str], stdin: str | None = None
               ) -> list[dict[str, Any]]:
    """squawk's findings as it reports them in JSON (0-based line and column), for the files
    at `paths`, or for `stdin` reported as the one path given."""
    where = ["--stdin-filepath", paths[0]] if stdin is not None else paths
    command = [str(squawk_binary()), "--reporter=json", *squawk_arguments(bundle), *where]
    done = subprocess.run(command, cwd=bundle.root, input=stdin, capture_output=True,
                          text=True, check=False, timeout=300)
    # 0: no finding, 1: findings; anything else is squawk failing to run.
    try:
        findings = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except json.JSONDecodeError:
        findings = None
    if not isinstance(findings, list):
        raise EventgateError(f"squawk failed (exit {done.returncode}) linting {bundle.root}: "
                             f"{(done.stderr or done.stdout).strip()[:500]}")
    return findings


def statement_spans(sql: str, source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of each statement, 1-based, the comments before it
    included: split by PostgreSQL's own parser, then found in the file in order."""
    spans = []
    position = 0
    for statement in split_statements(sql, source):
        start = sql.find(statement, position)
        if start < 0:  # split_statements returns slices of the file; this cannot happen
            raise EventgateError(f"{source}: a statement was not found in the file")
        position = start + len(statement)
        spans.append((sql.count("\n", 0, start) + 1, sql.count("\n", 0, position) + 1,
                      statement))
    return spans


def _statement_at(spans: list[tuple[int, int, str]], line: int) -> str:
    for first, last, text in spans:
        if first <= line <= last:
            return text
    return ""  # a line between statements (squawk reports a file-level finding at line 1)


def _blanked(sql: str, spans: list[tuple[int, int, str]], lines: set[int]) -> str:
    """The file with the statements holding `lines` replaced by blank lines, so the line
    numbers of the rest stay."""
    kept = sql.splitlines(keepends=True)
    for first, last, _ in spans:
        if any(first <= line <= last for line in lines):
            for n in range(first - 1, last):
                kept[n] = "\n"
    return "".join(kept)


def _raw_findings(bundle: Bundle, files: list[str], texts: dict[str, str],
                  spans: dict[str, list[tuple[int, int, str]]]) -> list[dict[str, Any]]:
    """squawk's findings over `files`. squawk reports nothing but the syntax error in a file
    its own parser cannot read (it is not PostgreSQL's: PostgreSQL accepts some statements it
    refuses), so such a file is linted again with those statements blanked out: the syntax
    errors stay findings (to be waived per statement), and the rest of the file is linted."""
    raw = run_squawk(bundle, files)
    unread: dict[str, set[int]] = {}
    for finding in raw:
        if finding["rule_name"] == "syntax-error":
            unread.setdefault(Path(finding["file"]).as_posix(), set()).add(finding["line"] + 1)
    for file, lines in unread.items():
        for _ in range(MAX_RELINTS):
            if file not in texts:
                break
            again = run_squawk(bundle, [file], _blanked(texts[file], spans[file], lines))
            more = {f["line"] + 1 for f in again if f["rule_name"] == "syntax-error"}
            if not more or more <= lines:
                # read in full now (or stuck on lines no statement holds: their syntax
                # errors stay findings, so nothing passes unread without a waiver)
                raw += [f for f in again if f["rule_name"] != "syntax-error"]
                break
            lines |= more
    return raw


def findings_of(bundle: Bundle) -> list[Finding]:
    """squawk's findings, each with its statement; repeats on one line (a syntax error squawk
    cannot parse past is reported once per token) are kept once."""
    files = lint_files(bundle)
    texts = {f: (bundle.root / f).read_text(encoding="utf-8") for f in files}
    spans = {f: statement_spans(texts[f], f) for f in files}
    seen: dict[tuple[str, int, str, str], Finding] = {}
    for raw in _raw_findings(bundle, files, texts, spans):
        file = Path(raw["file"]).as_posix()
        line = int(raw["line"]) + 1
        finding = Finding(file, line, int(raw.get("column", 0)) + 1, str(raw["rule_name"]),
                          str(raw["message"]), str(raw.get("help") or ""),
                          _statement_at(spans.get(file, []), line))
        seen.setdefault((file, line, finding.rule, finding.message), finding)
    return sorted(seen.values(), key=lambda f: (files.index(f.file) if f.file in files
                                                else len(files), f.line, f.rule))


def _waived_by(finding: Finding, waivers: tuple[LintWaiver, ...]) -> LintWaiver | None:
    return next((w for w in waivers
                 if w.covers(finding.rule, finding.file, finding.statement)), None)


def lint_bundle(bundle: Bundle) -> CheckResult:
    """squawk over the bundle's scripts: passed when every finding is waived with a reason and
    every waiver covers a finding."""
    waivers = bundle.expectations.lint_waivers
    subject = f"{len(lint_files(bundle))} migration and rollback scripts of {bundle.root.name}"
    reproduce = reproduce_command(bundle)
    findings = findings_of(bundle)
    open_findings = [f for f in findings if _waived_by(f, waivers) is None]
    stale = [w for w in waivers
             if not any(w.covers(f.rule, f.file, f.statement) for f in findings)]
    details = [f"not waived: {f.describe()}" for f in open_findings]
    details += [f"stale waiver: {w.describe()} covers no finding of squawk; remove it "
                f"(its reason: {w.reason})" for w in stale]
    if len(details) > MAX_DETAILS:
        details = [*details[:MAX_DETAILS], f"... and {len(details) - MAX_DETAILS} more"]
    data = {"findings": [{"file": f.file, "line": f.line, "column": f.column, "rule": f.rule,
                          "message": f.message,
                          "waived": (w.reason if (w := _waived_by(f, waivers)) else None)}
                         for f in findings],
            "stale_waivers": [w.describe() for w in stale]}
    waived = len(findings) - len(open_findings)
    if not open_findings and not stale:
        return CheckResult(CHECK, subject, True,
                           f"{len(findings)} squawk findings, every one waived with a reason "
                           f"({len(waivers)} waivers)", sql=reproduce, data=data)
    summary = (f"{len(open_findings)} squawk findings not waived, {len(stale)} stale waivers "
               f"({len(findings)} findings, {waived} waived)")
    return CheckResult(CHECK, subject, False, summary, tuple(details), reproduce, data)
