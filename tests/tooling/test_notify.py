"""Webhook notifications against a real HTTP server on 127.0.0.1: what arrives, and proof that
a failing, hung or absent webhook never fails or holds up the producer (the migration)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eventgate.bundle import load_bundle
from eventgate.dsn import describe
from eventgate.errors import ConfigError
from eventgate.migrate.notify import Tee, WebhookNotifier, notifier_from_env, notifying
from eventgate.migrate.runner import Runner, StatementReport, StepReport
from eventgate.pg.databases import Database

SECRET_PATH = "/services/T000/B000/XXXXsecret"
TARGET = "ops@db.example:5432/events"
# How long a test waits for something that must happen (a request reaching the server); a
# liveness bound only, never a measure of speed.
EVENTUALLY_S = 30.0


@dataclass
class Hook:
    """A webhook on 127.0.0.1: records every body, answers `status`, and, when `hold` is
    given, keeps each request waiting until the test sets it."""

    status: int = 200
    hold: threading.Event | None = None
    bodies: list[dict[str, object]] = field(default_factory=list)
    entered: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def texts(self) -> list[object]:
        with self.lock:
            return [b.get("text") for b in self.bodies]


def _serve(hook: Hook) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hook.lock:
                hook.bodies.append(json.loads(body))
                hook.entered += 1
            hook.arrived.set()
            if hook.hold is not None:
                hook.hold.wait()
            self.send_response(hook.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if hook.status == 200 else b"Internal Server Error")

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up (timeout) before a held answer is expected here

    server = Server(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    # A short poll interval: shutdown() waits for the next poll, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def webhook() -> Iterator[Callable[..., Hook]]:
    """Start webhooks; each is released (if held) and shut down after the test."""
    running: list[tuple[Hook, ThreadingHTTPServer, threading.Thread]] = []

    def start(status: int = 200, hold: threading.Event | None = None) -> Hook:
        hook = Hook(status=status, hold=hold)
        server, thread = _serve(hook)
        running.append((hook, server, thread))
        return hook

    yield start
    for hook, server, thread in running:
        if hook.hold is not None:
            hook.hold.set()
        server.shutdown()
        thread.join()
        server.server_close()


def _report(version: int, label: str, statements: int, rows: int | None,
            duration_s: float) -> StepReport:
    return StepReport(version, label, [
        StatementReport(f"statement {i}", "OK", rows if i == 0 else None, duration_s / statements)
        for i in range(statements)], duration_s)


REPORTS = [_report(8, "008_enhanced_indexing.sql", 3, None, 0.123),
           _report(9, "009_wedding_compatibility.sql", 2, 120, 1.5)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_messages_arrive_in_order_with_their_content(webhook: Callable[..., Hook]) -> None:
    hook = webhook()
    notifier = WebhookNotifier(hook.url)
    notifier.started("migrate", TARGET, [r.label for r in REPORTS])
    for report in REPORTS:
        notifier.begin(report.label, len(report.statements))
        for statement in report.statements:
            notifier.statement(statement.summary)
        notifier.end(report)
    notifier.note("009_wedding_compatibility.sql: lock_timeout or deadlock, retry 1 in 0.20 s")
    notifier.succeeded(f"migrated {TARGET} to 009 in 1.6 s")

    assert notifier.close(grace_s=EVENTUALLY_S) == []
    assert hook.texts == [
        f":arrow_forward: eventgate migrate on {TARGET}: 2 pending (008…009)",
        ":white_check_mark: 008_enhanced_indexing.sql applied in 0.12 s (3 statements)",
        ":white_check_mark: 009_wedding_compatibility.sql applied in 1.50 s "
        "(2 statements, 120 rows)",
        ":warning: 009_wedding_compatibility.sql: lock_timeout or deadlock, retry 1 in 0.20 s",
        f":white_check_mark: migrated {TARGET} to 009 in 1.6 s",
    ]
    assert notifier.stats().sent == 5


def test_a_failure_names_the_migration_first_line_only_escaped_and_redacted(
        webhook: Callable[..., Hook]) -> None:
    hook = webhook()
    notifier = WebhookNotifier(hook.url)
    notifier.started("rollback", TARGET)
    notifier.begin("010_wedding_data_migration_rollback.sql", 12)
    notifier.failed("refused: 3 weddings hold hosts < > & vendors, connecting to "
                    "postgresql://ops:hunter2@db:5432/events\nsecond line with details")

    assert notifier.close(grace_s=EVENTUALLY_S) == []
    assert hook.texts == [
        f":rewind: eventgate rollback on {TARGET}",
        f":x: FAILED: eventgate rollback on {TARGET}: during "
        "010_wedding_data_migration_rollback.sql: refused: 3 weddings hold hosts &lt; &gt; "
        "&amp; vendors, connecting to postgresql://ops:****@db:5432/events",
    ]


def test_an_erroring_webhook_is_one_warning_naming_status_and_host_only(
        webhook: Callable[..., Hook]) -> None:
    hook = webhook(status=500)
    notifier = WebhookNotifier(hook.url)
    notifier.started("migrate", TARGET, ["008_enhanced_indexing.sql"])
    notifier.end(REPORTS[0])
    notifier.succeeded("done")

    warnings = notifier.close(grace_s=EVENTUALLY_S)

    assert len(hook.texts) == 3  # every message was tried, none retried
    assert len(warnings) == 1
    port = hook.url.split(":")[2].split("/")[0]
    assert f"http://127.0.0.1:{port}" in warnings[0]
    assert "3 of 3 failed (HTTP 500: 3); the migration itself was not affected" in warnings[0]
    assert SECRET_PATH not in warnings[0]
    assert "secret" not in warnings[0]


def test_a_hung_webhook_never_holds_up_the_producer_and_close_gives_up(
        webhook: Callable[..., Hook]) -> None:
    release = threading.Event()
    hook = webhook(hold=release)
    # A long timeout, so that the only thing ending the first request is the test's release.
    notifier = WebhookNotifier(hook.url, timeout_s=600)

    notifier.started("migrate", TARGET, [r.label for r in REPORTS])
    assert hook.arrived.wait(EVENTUALLY_S), "the first message never reached the server"
    for report in REPORTS:
        notifier.end(report)
    notifier.succeeded("done")
    # Every producer call has returned while the server still holds the first request.
    assert hook.entered == 1 and not release.is_set()

    warnings = notifier.close(grace_s=0.2)

    assert hook.entered == 1 and not release.is_set()  # close() returned, the request is held
    assert len(warnings) == 1
    assert "the final message may not have been delivered (4 unsent or in flight)" in warnings[0]
    assert SECRET_PATH not in warnings[0]
    release.set()
    assert notifier.join(EVENTUALLY_S), "the worker did not stop after the release"
    assert hook.entered == 1  # the abandoned messages were not sent after the grace


def test_a_full_queue_drops_the_oldest_progress_lines_and_keeps_the_final_one(
        webhook: Callable[..., Hook]) -> None:
    release = threading.Event()
    hook = webhook(hold=release)
    notifier = WebhookNotifier(hook.url, timeout_s=600, max_queue=2)
    notifier.started("migrate", TARGET)  # taken by the worker and held by the server
    assert hook.arrived.wait(EVENTUALLY_S)
    for n in range(5):
        notifier.note(f"progress {n}")
    notifier.succeeded("done")
    release.set()

    warnings = notifier.close(grace_s=EVENTUALLY_S)

    assert hook.texts == [f":arrow_forward: eventgate migrate on {TARGET}", ":warning: progress 4",
                          ":white_check_mark: done"]
    assert warnings == [f"webhook notifications to {hook.url.removesuffix(SECRET_PATH)}: "
                        "4 progress messages dropped because the webhook could not keep up"]


def test_nothing_listening_is_a_warning_not_an_exception() -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{_closed_port()}{SECRET_PATH}")
    notifier.started("migrate", TARGET, ["008_enhanced_indexing.sql"])
    notifier.end(REPORTS[0])
    notifier.failed("boom")

    warnings = notifier.close(grace_s=EVENTUALLY_S)

    assert len(warnings) == 1
    assert "3 of 3 failed (connection failed: 3)" in warnings[0]
    assert SECRET_PATH not in warnings[0]


def test_the_timeout_comes_from_the_environment(webhook: Callable[..., Hook]) -> None:
    hook = webhook(hold=threading.Event())  # answers only at teardown
    notifier = notifier_from_env({"SLACK_WEBHOOK_URL": hook.url,
                                  "EVENTGATE_WEBHOOK_TIMEOUT": "0.2",
                                  "EVENTGATE_WEBHOOK_GRACE": "7.5"})
    assert notifier is not None
    assert (notifier.timeout_s, notifier.grace_s) == (0.2, 7.5)
    notifier.succeeded("done")

    warnings = notifier.close(grace_s=EVENTUALLY_S)

    assert len(warnings) == 1 and "1 of 1 failed (timeout: 1)" in warnings[0]


def test_notifier_from_env_is_off_without_a_url_and_refuses_a_bad_one() -> None:
    assert notifier_from_env({}) is None
    assert notifier_from_env({"SLACK_WEBHOOK_URL": "  "}) is None
    notifier = notifier_from_env({"SLACK_WEBHOOK_URL": "https://hooks.slack.com" + SECRET_PATH})
    assert notifier is not None
    assert (notifier.origin, notifier.timeout_s, notifier.grace_s) == (
        "https://hooks.slack.com", 3.0, 2.0)
    assert notifier.close() == []  # never started a thread, nothing to wait for

    for bad, found in [("ftp://hooks.example.com" + SECRET_PATH, "it starts with 'ftp:'"),
                       ("hooks.slack.com" + SECRET_PATH, "it has no scheme"),
                       ("https://" + SECRET_PATH, "it has no host")]:
        with pytest.raises(ConfigError) as refused:
            notifier_from_env({"SLACK_WEBHOOK_URL": bad})
        message = str(refused.value)
        assert message.startswith("SLACK_WEBHOOK_URL must be an http:// or https:// URL")
        assert found in message
        assert "XXXXsecret" not in message and "hooks.example.com" not in message
        assert refused.value.__cause__ is None

    with pytest.raises(ConfigError, match=r"^SLACK_WEBHOOK_URL is not a valid URL") as refused:
        notifier_from_env({"SLACK_WEBHOOK_URL": "https://hooks.slack.com:abc" + SECRET_PATH})
    assert "XXXXsecret" not in str(refused.value) and refused.value.__cause__ is None

    with pytest.raises(ConfigError, match="EVENTGATE_WEBHOOK_TIMEOUT='0' is not a number"):
        notifier_from_env({"SLACK_WEBHOOK_URL": "https://h.example/x",
                           "EVENTGATE_WEBHOOK_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match="EVENTGATE_WEBHOOK_GRACE='soon' is not a number"):
        notifier_from_env({"SLACK_WEBHOOK_URL": "https://h.example/x",
                           "EVENTGATE_WEBHOOK_GRACE": "soon"})


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin(self, label: str, statements: int) -> None:
        self.calls.append(f"begin {label} {statements}")

    def statement(self, text: str) -> None:
        self.calls.append(f"statement {text}")

    def end(self, report: StepReport) -> None:
        self.calls.append(f"end {report.label}")

    def note(self, text: str) -> None:
        self.calls.append(f"note {text}")


class _Broken:
    def begin(self, label: str, statements: int) -> None:
        raise RuntimeError("terminal gone")

    def statement(self, text: str) -> None:
        raise RuntimeError("terminal gone")

    def end(self, report: StepReport) -> None:
        raise RuntimeError("terminal gone")

    def note(self, text: str) -> None:
        pass


def test_tee_feeds_every_sink_and_a_raising_one_breaks_nothing() -> None:
    recorder = _Recorder()
    tee = Tee(_Broken(), None, recorder)
    tee.begin("008_enhanced_indexing.sql", 1)
    tee.statement("CREATE INDEX x")
    tee.end(REPORTS[0])
    tee.note("hello")

    assert recorder.calls == ["begin 008_enhanced_indexing.sql 1", "statement CREATE INDEX x",
                              "end 008_enhanced_indexing.sql", "note hello"]
    assert tee.errors == 3
    assert tee.warnings() == ["progress reporting to _Broken failed 3 times (first: "
                              "RuntimeError: terminal gone); the migration itself was not "
                              "affected"]


def test_notifying_posts_what_escaped_closes_and_warns_once(
        webhook: Callable[..., Hook]) -> None:
    hook = webhook(status=500)
    notifier = WebhookNotifier(hook.url)
    tee = Tee(_Broken(), notifier)
    warned: list[str] = []
    with pytest.raises(KeyboardInterrupt), notifying(notifier, tee, warned.append):
        notifier.started("migrate", TARGET)
        tee.begin("010_wedding_data_migration.sql", 3)
        raise KeyboardInterrupt

    assert hook.texts == [
        f":arrow_forward: eventgate migrate on {TARGET}",
        f":x: FAILED: eventgate migrate on {TARGET}: during 010_wedding_data_migration.sql: "
        "interrupted (Ctrl-C)"]
    assert len(warned) == 2
    assert "2 of 2 failed (HTTP 500: 2)" in warned[0]
    assert warned[1].startswith("progress reporting to _Broken failed once")

    quiet: list[str] = []
    with notifying(None, Tee(), quiet.append):
        pass
    assert quiet == []


@pytest.mark.destructive
def test_the_real_runner_notifies_each_migration_while_the_webhook_answers_500(
        legacy_db: Database, webhook: Callable[..., Hook]) -> None:
    hook = webhook(status=500)
    notifier = WebhookNotifier(hook.url)
    bundle = load_bundle()
    with legacy_db.connect() as conn:
        runner = Runner(conn, bundle, progress=notifier)
        notifier.started("migrate", describe(legacy_db.dsn), [m.label for m in runner.pending()])
        reports = runner.execute()
        notifier.succeeded(f"migrated {describe(legacy_db.dsn)} to {reports[-1].version:03d}")
        applied = [r[0] for r in conn.execute(
            "SELECT version FROM eventgate_ledger.migration_ledger ORDER BY 1")]

    warnings = notifier.close(grace_s=EVENTUALLY_S)

    assert applied == [6, 7, 8, 9, 10]  # the migration succeeded, the webhook failing throughout
    texts = [str(t) for t in hook.texts]
    assert texts[0].startswith(":arrow_forward: eventgate migrate on ")
    assert texts[0].endswith(": 5 pending (006…010)")
    assert texts[-1].endswith(" to 010")
    # One line per migration; 010 runs online and posts its backfills' progress too (the first
    # batch and the last of each table, at this size).
    per_migration = [t for t in texts[1:-1] if not t.startswith(":hourglass")]
    backfills = [t for t in texts[1:-1] if t.startswith(":hourglass")]
    assert len(per_migration) == len(bundle.migrations) == 5
    for text, migration in zip(per_migration, bundle.migrations, strict=True):
        assert text.startswith(f":white_check_mark: {migration.label} applied in ")
    assert backfills and all("010_wedding_data_migration.sql backfill wedding_" in t
                             and "rows/s" in t for t in backfills)
    assert any("(100 %)" in t for t in backfills)
    posted = len(texts)
    assert len(warnings) == 1 and f"{posted} of {posted} failed (HTTP 500: {posted})" in (
        warnings[0])


@pytest.mark.destructive
def test_the_cli_posts_migrate_and_rollback_to_the_webhook_in_the_environment(
        legacy_db: Database, webhook: Callable[..., Hook], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from eventgate.cli.main import main

    hook = webhook()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
    assert main(["migrate", "--execute", "--dsn", legacy_db.dsn]) == 0
    assert main(["rollback", "--dsn", legacy_db.dsn]) == 0
    texts = [str(t) for t in hook.texts]
    assert texts[0].startswith(":arrow_forward: eventgate migrate on ")
    assert sum(":white_check_mark: " in t and " applied in " in t for t in texts) == 5
    assert any(t.startswith(":rewind: eventgate rollback on ") for t in texts)
    assert any("010_wedding_data_migration_rollback.sql rolled back in" in t for t in texts)
    assert "warning" not in capsys.readouterr().out


@pytest.mark.destructive
def test_a_malformed_webhook_setting_turns_notifications_off_not_the_rollback(
        migrated_db: Database, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from eventgate.cli.main import main

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "hooks.slack.example/services/T0/B0/secretpart")
    assert main(["rollback", "--dsn", migrated_db.dsn]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: notifications off:" in out and "rolled back 1 migrations" in out
    assert "secretpart" not in out
