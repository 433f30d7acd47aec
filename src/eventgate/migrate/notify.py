"""Chat notifications for migrations and rollbacks: what the lines say, when they are sent, and
how progress reaches several sinks at once. Delivery (a bounded queue and a background thread,
so that a failing, slow or hung webhook can never fail or delay the migration itself) is
eventgate.migrate.webhook's.

    notifier = notifier_from_env()          # None unless SLACK_WEBHOOK_URL is set
    sink = Tee(RichProgress("applying"), notifier)
    with notifying(notifier, sink, warn):   # FAILED on any exception; close() and warnings
        runner = Runner(conn, bundle, progress=sink)
        notifier.started("migrate", describe(dsn), [m.label for m in runner.pending()])
        runner.execute()                     # calls notifier.end() once per migration
        notifier.succeeded("migrated ... to 010 in 3.2 s")
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from eventgate import dsn as dsn_mod
from eventgate.errors import ConfigError
from eventgate.migrate.delivery import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_QUEUE,
    DEFAULT_TIMEOUT_S,
    DeliveryQueue,
    NotifierStats,
    plural,
)
from eventgate.migrate.mail import email_from_env
from eventgate.migrate.progress import BatchProgress, ProgressSink, StepReport
from eventgate.migrate.webhook import WebhookQueue, parse_webhook_url

URL_VARIABLE = "SLACK_WEBHOOK_URL"
TIMEOUT_VARIABLE = "EVENTGATE_WEBHOOK_TIMEOUT"
GRACE_VARIABLE = "EVENTGATE_WEBHOOK_GRACE"
# Chat lines, not logs: the first line of a failure says enough, and its SQL can be long.
_MAX_DETAIL = 300
BATCH_POST_S = 60.0  # at most one backfill progress line a minute
_VERSION = re.compile(r"\d+")

_ICONS = {"migrate": ":arrow_forward:", "rollback": ":rewind:", "backup": ":floppy_disk:",
          "restore": ":leftwards_arrow_with_hook:", "gate": ":vertical_traffic_light:"}
_DONE = {"migrate": "applied", "rollback": "rolled back"}
_NOUN = {"migrate": "migration", "rollback": "rollback", "backup": "backup",
         "restore": "restore", "gate": "gate run"}


def _seconds(environ: Mapping[str, str], name: str, default: float, *, allow_zero: bool) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        floor = "0 or more" if allow_zero else "more than 0"
        raise ConfigError(f"{name}={text!r} is not a number of seconds {floor}, e.g. {default:g}")
    return value


def notifier_from_env(environ: Mapping[str, str] = os.environ) -> WebhookNotifier | None:
    """A notifier for $SLACK_WEBHOOK_URL and the guide's $EMAIL_ALERTS (eventgate.migrate.mail;
    None when neither is set), with its timeout and grace from $EVENTGATE_WEBHOOK_TIMEOUT and
    $EVENTGATE_WEBHOOK_GRACE; a malformed setting is a ConfigError before anything runs, so a
    typo fails loudly instead of silencing the notifications."""
    timeout_s = _seconds(environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S, allow_zero=False)
    grace_s = _seconds(environ, GRACE_VARIABLE, DEFAULT_GRACE_S, allow_zero=True)
    channels: list[DeliveryQueue] = []
    url = environ.get(URL_VARIABLE, "").strip()
    if url:
        parse_webhook_url(url, URL_VARIABLE)  # so that the error names the variable to fix
        channels.append(WebhookQueue(url, timeout_s=timeout_s, grace_s=grace_s))
    email = email_from_env(environ, timeout_s=timeout_s, grace_s=grace_s)
    if email is not None:
        channels.append(email)
    return WebhookNotifier(channels=channels) if channels else None


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in dsn_mod.redact(text).splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def _span(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return labels[0]

    def version(label: str) -> str:
        found = _VERSION.match(label)
        return found.group() if found else label

    return f"{version(labels[0])}…{version(labels[-1])}"


class _AllChannels:
    """Every channel as one: a line to each, their warnings together."""

    def __init__(self, channels: list[DeliveryQueue]) -> None:
        self.channels = channels
        first = channels[0]
        self.origin = ", ".join(c.origin for c in channels)
        self.timeout_s, self.grace_s = first.timeout_s, first.grace_s

    def put(self, text: str, *, essential: bool) -> None:
        for channel in self.channels:
            channel.put(text, essential=essential)

    def close(self, grace_s: float | None, *, run: str) -> list[str]:
        # Each channel waits in parallel, so the whole costs one grace, not one per channel.
        for channel in self.channels:
            channel.begin_close()
        return [w for channel in self.channels for w in channel.close(grace_s, run=run)]

    def join(self, timeout: float | None = None) -> bool:
        return all(channel.join(timeout) for channel in self.channels)

    def stats(self) -> NotifierStats:
        """The first channel's (the webhook's, when there is one): what tests of it read."""
        return self.channels[0].stats()


class WebhookNotifier:
    """A ProgressSink posting to a Slack-compatible webhook and/or sending email: the run's
    start and end, one line per migration, and notes. Every method only formats a line and
    hands it to the channels' queues: none blocks on the network, none raises because of a
    channel."""

    def __init__(self, url: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S, max_queue: int = DEFAULT_MAX_QUEUE,
                 channels: list[DeliveryQueue] | None = None) -> None:
        # The webhook of `url`, or the channels given (a webhook, email: notifier_from_env).
        self.channels: list[DeliveryQueue] = list(channels or []) + (
            [WebhookQueue(url, timeout_s=timeout_s, grace_s=grace_s, max_queue=max_queue)]
            if url else [])
        if not self.channels:
            raise ValueError("a notifier needs a webhook URL or a channel")
        self._hook = _AllChannels(self.channels)
        self._action: str | None = None
        self._target: str | None = None
        self._current: str | None = None
        self._batch_posted = 0.0

    @property
    def origin(self) -> str:
        return self._hook.origin

    @property
    def timeout_s(self) -> float:
        return self._hook.timeout_s

    @property
    def grace_s(self) -> float:
        return self._hook.grace_s

    # -- the run as a whole ------------------------------------------------------------------

    def started(self, action: str, target: str, pending: Sequence[str] = ()) -> None:
        """`action` is the verb (migrate, rollback), `target` a password-free name of the
        database (eventgate.dsn.describe), `pending` the labels about to run, if known."""
        self._action, self._target = action, target
        text = f"{_ICONS.get(action, ':arrow_forward:')} eventgate {action} on {target}"
        if pending:
            waiting = "to roll back" if action == "rollback" else "pending"
            text += f": {len(pending)} {waiting} ({_span(pending)})"
        self._hook.put(text, essential=True)

    def succeeded(self, summary: str) -> None:
        self._hook.put(f":white_check_mark: {summary}", essential=True)

    def failed(self, reason: str) -> None:
        what = f"eventgate {self._action} on {self._target}: " if self._action else ""
        during = f"during {self._current}: " if self._current else ""
        detail = _first_line(reason) or "no reason given"
        self._hook.put(f":x: FAILED: {what}{during}{detail}", essential=True)

    # -- ProgressSink ------------------------------------------------------------------------

    def begin(self, label: str, statements: int) -> None:
        # Nothing posted: one line per migration (at its end) is what a channel can bear.
        # The label is kept so that a failure can say which migration it stopped in.
        self._current = label

    def statement(self, text: str) -> None:
        """Never posted: a migration has dozens of statements."""

    def end(self, report: StepReport) -> None:
        self._current = None
        done = _DONE.get(self._action or "", "finished")
        counts = plural(len(report.statements), "statement")
        if report.rows:
            counts += f", {plural(report.rows, 'row')}"
        self._hook.put(f":white_check_mark: {report.label} {done} in {report.duration_s:.2f} s "
                       f"({counts})", essential=False)

    def note(self, text: str) -> None:
        self._hook.put(f":warning: {_first_line(text)}", essential=False)

    def batch(self, progress: BatchProgress) -> None:
        # A channel bears a line a minute, not one per batch: the first, then one a minute, and
        # the last.
        now = time.monotonic()
        last = progress.done >= progress.total
        if progress.batches == 1 or last or now - self._batch_posted >= BATCH_POST_S:
            self._batch_posted = now
            self._hook.put(f":hourglass_flowing_sand: {progress.line()}", essential=False)

    # -- the end -----------------------------------------------------------------------------

    def close(self, grace_s: float | None = None) -> list[str]:
        """Stop taking messages, wait at most `grace_s` (default: the notifier's grace) for
        the queue to drain, and return warnings to show the user (webhook.WebhookQueue.close)."""
        return self._hook.close(grace_s, run=_NOUN.get(self._action or "", "migration"))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to stop after close(); True when it has (or never started)."""
        return self._hook.join(timeout)

    def stats(self) -> NotifierStats:
        return self._hook.stats()


class Tee:
    """A ProgressSink that hands every call to several sinks, e.g. the terminal and the
    webhook. A sink that raises is counted and skipped for that call, so it can break neither
    the other sinks nor the migration, whose transaction is open while progress is reported.
    KeyboardInterrupt and SystemExit are not caught: Ctrl-C still stops the run."""

    def __init__(self, *sinks: ProgressSink | None) -> None:
        # None is accepted and left out, so that `Tee(console, notifier_from_env())` works.
        self.sinks: list[ProgressSink] = [s for s in sinks if s is not None]
        self._errors: list[int] = [0] * len(self.sinks)
        self._first: list[str] = [""] * len(self.sinks)

    def begin(self, label: str, statements: int) -> None:
        self._each(lambda sink: sink.begin(label, statements))

    def statement(self, text: str) -> None:
        self._each(lambda sink: sink.statement(text))

    def end(self, report: StepReport) -> None:
        self._each(lambda sink: sink.end(report))

    def note(self, text: str) -> None:
        self._each(lambda sink: sink.note(text))

    def batch(self, progress: BatchProgress) -> None:
        self._each(lambda sink: sink.batch(progress))

    def _each(self, call: Callable[[ProgressSink], None]) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                call(sink)
            except Exception as exc:
                self._errors[i] += 1
                if not self._first[i]:
                    self._first[i] = f"{type(exc).__name__}: {_first_line(str(exc))}"

    @property
    def errors(self) -> int:
        return sum(self._errors)

    def warnings(self) -> list[str]:
        """One line per sink that raised: how often, and the first error."""
        return [f"progress reporting to {type(sink).__name__} failed "
                f"{'once' if n == 1 else f'{n} times'} (first: {first}); the migration itself "
                "was not affected"
                for sink, n, first in zip(self.sinks, self._errors, self._first, strict=True)
                if n]


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        return f"stopped (exit status {exc.code})"
    return str(exc).strip() or type(exc).__name__


@contextlib.contextmanager
def notifying(notifier: WebhookNotifier | None, tee: Tee | None,
              warn: Callable[[str], None]) -> Iterator[None]:
    """Around a command: whatever escapes the block (an error, Ctrl-C, SIGTERM as SystemExit)
    is posted as FAILED and re-raised unchanged; in every case the notifier is closed, waiting
    at most its grace, and each warning of the notifier and the tee goes to `warn`, once."""
    try:
        yield
    except BaseException as exc:
        if notifier is not None:
            notifier.failed(_why(exc))
        raise
    finally:
        warnings = notifier.close() if notifier is not None else []
        for line in warnings + (tee.warnings() if tee is not None else []):
            warn(line)
