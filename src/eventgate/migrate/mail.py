"""Notifications by email, beside the webhook: the guide's EMAIL_ALERTS, sent with the standard
library's smtplib from the delivery queue's background thread (eventgate.migrate.delivery), one
message per line, so a hung or refusing mail server delays nothing beyond the grace.

    EMAIL_ALERTS    recipients, comma-separated (the guide: admin@yourdomain.com)
    SMTP_HOST       the mail server (default localhost)      SMTP_PORT  (default 25)
    SMTP_STARTTLS   true: upgrade the connection with STARTTLS before logging in
    SMTP_USER, SMTP_PASSWORD   log in when both are set (the password is never shown)
    EMAIL_FROM      the sender (default eventgate@<this host>)

Only smtp://host:port is ever shown."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from eventgate.errors import ConfigError
from eventgate.migrate.delivery import DEFAULT_GRACE_S, DEFAULT_TIMEOUT_S, DeliveryQueue

RECIPIENTS_VARIABLE = "EMAIL_ALERTS"
_ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
_ICON = re.compile(r"^:[a-z_]+:\s*")  # the chat icon a line starts with


class EmailQueue(DeliveryQueue):
    kind = "email notifications"
    noun = "mail server"

    def __init__(self, recipients: list[str], *, host: str = "localhost", port: int = 25,
                 starttls: bool = False, user: str | None = None, password: str | None = None,
                 sender: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S) -> None:
        super().__init__(f"smtp://{host}:{port}", timeout_s=timeout_s, grace_s=grace_s)
        self.recipients = recipients
        self._host, self._port, self._starttls = host, port, starttls
        self._login = (user, password) if user and password else None
        self._sender = sender or f"eventgate@{socket.gethostname()}"

    def _deliver(self, session: object, text: str) -> str | None:
        message = EmailMessage()
        subject = _ICON.sub("", text.splitlines()[0] if text else "")
        message["Subject"] = f"[eventgate] {subject[:150]}"
        message["From"] = self._sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain="eventgate")
        message.set_content(_ICON.sub("", text) + "\n")
        try:
            # One connection a message: a server that drops the first cannot lose the rest.
            with smtplib.SMTP(self._host, self._port, timeout=self.timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._login:
                    try:
                        smtp.login(*self._login)
                    except smtplib.SMTPException:
                        # A refusal, or a server that hangs up on it after the last mechanism.
                        return "login refused"
                smtp.send_message(message)
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "connection refused"
        except smtplib.SMTPResponseException as exc:
            return f"SMTP {exc.smtp_code}"
        except (smtplib.SMTPException, OSError) as exc:
            return type(exc).__name__
        return None


def email_from_env(environ: Mapping[str, str], *, timeout_s: float,
                   grace_s: float) -> EmailQueue | None:
    """An EmailQueue for $EMAIL_ALERTS (None when unset or empty); a malformed setting is a
    ConfigError naming the variable, before anything runs."""
    raw = environ.get(RECIPIENTS_VARIABLE, "").strip()
    if not raw:
        return None
    recipients = [a.strip() for a in raw.split(",") if a.strip()]
    bad = [a for a in recipients if not _ADDRESS.match(a)]
    if bad or not recipients:
        raise ConfigError(f"{RECIPIENTS_VARIABLE} holds {bad[0] if bad else raw!r}, not an email "
                          "address; give addresses separated by commas")
    port_text = environ.get("SMTP_PORT", "25").strip() or "25"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"SMTP_PORT={port_text!r} is not a port number")
    starttls = environ.get("SMTP_STARTTLS", "").strip().lower()
    if starttls not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"SMTP_STARTTLS={starttls!r} is neither true nor false")
    return EmailQueue(
        recipients, host=environ.get("SMTP_HOST", "").strip() or "localhost",
        port=int(port_text), starttls=starttls in ("1", "true", "yes", "on"),
        user=environ.get("SMTP_USER") or None, password=environ.get("SMTP_PASSWORD") or None,
        sender=environ.get("EMAIL_FROM") or None, timeout_s=timeout_s, grace_s=grace_s)
