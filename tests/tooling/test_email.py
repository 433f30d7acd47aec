"""Email beside the webhook: the guide's EMAIL_ALERTS, delivered to a real SMTP server on
loopback (aiosmtpd) and read back there; a refusing or hung mail server costs the work nothing
beyond the grace."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from eventgate.migrate.notify import notifier_from_env
from eventgate.pg.databases import Database

USER, PASSWORD = "alerts", "mail-secret-pw"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.rcpt: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.rcpt.append(list(envelope.rcpt_tos))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok)

    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _env(port: int, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "EMAIL_"))
             and k != "SLACK_WEBHOOK_URL"}
    return {**clean, "COLUMNS": "200", "EMAIL_ALERTS": "ops@example.org, dba@example.org",
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USER": USER,
            "SMTP_PASSWORD": PASSWORD, **extra}


@pytest.mark.destructive
def test_migrate_and_rollback_send_each_notification_by_email(
        legacy_db: Database, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    env = _env(port)
    for verb in (["migrate", "--execute"], ["rollback"]):
        run = subprocess.run([sys.executable, "-m", "eventgate.cli", *verb, "--dsn",
                              legacy_db.dsn], env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert PASSWORD not in run.stdout + run.stderr
    subjects = [" ".join(str(m["Subject"]).split()) for m in inbox.messages]
    assert subjects[0].startswith("[eventgate] eventgate migrate on ")
    for label in ("006_event_types_foundation.sql applied", "010_wedding_data_migration.sql "
                  "applied", "010_wedding_data_migration_rollback.sql rolled back"):
        assert any(label in s for s in subjects), subjects
    assert any("backfill wedding_invitations" in s and "rows/s" in s for s in subjects)
    assert any(s.startswith("[eventgate] eventgate rollback on ") for s in subjects)
    assert all(r == ["ops@example.org", "dba@example.org"] for r in inbox.rcpt)
    assert all(m.get_content().strip() for m in inbox.messages)  # type: ignore[attr-defined]


def test_a_refused_login_is_a_warning_naming_only_the_server(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = notifier_from_env(_env(port, SMTP_PASSWORD="wrong"))
    assert notifier is not None
    notifier.started("migrate", "db on host")
    notifier.succeeded("done")
    warnings = notifier.close(grace_s=10)
    assert inbox.messages == []
    assert warnings == [f"email notifications to smtp://127.0.0.1:{port}: 2 of 2 failed (login "
                        "refused: 2); the migration itself was not affected"]


def test_a_mail_server_that_never_answers_costs_at_most_the_grace() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never says a word
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        notifier = notifier_from_env(_env(port, EVENTGATE_WEBHOOK_TIMEOUT="30",
                                          EVENTGATE_WEBHOOK_GRACE="1"))
        assert notifier is not None
        notifier.started("migrate", "db on host")
        started = time.monotonic()
        warnings = notifier.close()
        waited = time.monotonic() - started
        # The grace (1 s) is the bound, not the 30 s timeout; generous for a busy machine.
        assert waited < 5, waited
        assert any("still busy after the 1 s grace" in w for w in warnings), warnings
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_bad_email_setting_is_refused_before_anything_runs() -> None:
    from eventgate.errors import ConfigError

    with pytest.raises(ConfigError, match="EMAIL_ALERTS holds 'admin-at-example', not an email"):
        notifier_from_env({"EMAIL_ALERTS": "admin-at-example"})
    with pytest.raises(ConfigError, match="SMTP_PORT='smtp' is not a port number"):
        notifier_from_env({"EMAIL_ALERTS": "a@b.org", "SMTP_PORT": "smtp"})


@pytest.mark.destructive
def test_backup_restore_and_the_gates_verdict_are_sent_too(
        migrated_db: Database, smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    env = _env(port)
    backups = str(tmp_path / "backups")
    for verb in (["backup", "--verify", "--backup-dir", backups],
                 ["restore", "--latest", "--yes", "--backup-dir", backups],
                 ["gate", "--reports", str(tmp_path / "reports")]):
        run = subprocess.run([sys.executable, "-m", "eventgate.cli", *verb, "--dsn",
                              migrated_db.dsn], env=env, capture_output=True, text=True,
                             timeout=600, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
    subjects = [" ".join(str(m["Subject"]).split()) for m in inbox.messages]
    assert [s.split(" on ")[0] for s in subjects if " on " in s][:3] == [
        "[eventgate] eventgate backup", "[eventgate] eventgate restore",
        "[eventgate] eventgate gate"]
    assert any(s.startswith("[eventgate] backed up ") and s.endswith(", verified")
               for s in subjects), subjects
    assert any(s.startswith(f"[eventgate] restored {migrated_db.name} from ") for s in subjects)
    assert any(s.startswith("[eventgate] gate GO on ") for s in subjects), subjects
