"""Chat notifications for migrations and rollbacks: short lines POSTed as `{"text": ...}` to a
Slack-compatible incoming webhook, from a background thread, so that a failing, slow or hung
webhook can never fail or delay the migration itself.

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
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from eventgate import dsn as dsn_mod
from eventgate.errors import ConfigError
from eventgate.migrate.runner import ProgressSink, StepReport

URL_VARIABLE = "SLACK_WEBHOOK_URL"
TIMEOUT_VARIABLE = "EVENTGATE_WEBHOOK_TIMEOUT"
GRACE_VARIABLE = "EVENTGATE_WEBHOOK_GRACE"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_GRACE_S = 2.0
# A run posts one line per migration plus a handful more; 100 only fills up when the webhook
# stalls, and then dropping old progress beats growing without bound.
DEFAULT_MAX_QUEUE = 100
# Chat lines, not logs: the first line of a failure says enough, and its SQL can be long.
_MAX_DETAIL = 300
# Slack answers errors with a bare code ("invalid_payload", "no_service"); a body of any other
# shape could echo the request, and with it the secret path, so it is never shown.
_SLACK_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
_VERSION = re.compile(r"\d+")

_ICONS = {"migrate": ":arrow_forward:", "rollback": ":rewind:"}
_DONE = {"migrate": "applied", "rollback": "rolled back"}
_NOUN = {"migrate": "migration", "rollback": "rollback"}


def public_origin(url: httpx.URL) -> str:
    """scheme://host[:port] of a webhook: the path (and any query or user info) of a Slack
    webhook URL is its secret, so this is all of it that is ever shown."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port is not None else "")


def parse_webhook_url(url: str, source: str = URL_VARIABLE) -> httpx.URL:
    """The webhook URL, or a ConfigError that names `source` but never repeats the URL."""
    example = "such as https://hooks.slack.com/services/T…/B…/…"
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):
        # `from None`: the parser's own message may quote the URL, and --traceback shows causes.
        raise ConfigError(f"{source} is not a valid URL; expected an https:// URL {example} "
                          "(the value is not shown: webhook URLs are secrets)") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        scheme = parsed.scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", parsed.scheme) else ""
        if scheme in ("http", "https"):
            found = "it has no host"
        else:
            found = f"it starts with '{scheme}:'" if scheme else "it has no scheme"
        raise ConfigError(f"{source} must be an http:// or https:// URL with a host, {example}; "
                          f"{found} (the rest is not shown: webhook URLs are secrets)")
    return parsed


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
    """A notifier for $SLACK_WEBHOOK_URL (None when it is unset or empty), with its timeout and
    grace from $EVENTGATE_WEBHOOK_TIMEOUT and $EVENTGATE_WEBHOOK_GRACE; a malformed setting is
    a ConfigError before anything runs, so a typo fails loudly instead of silencing the hook."""
    url = environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    parse_webhook_url(url, URL_VARIABLE)  # so that the error names the variable to fix
    return WebhookNotifier(
        url,
        timeout_s=_seconds(environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S, allow_zero=False),
        grace_s=_seconds(environ, GRACE_VARIABLE, DEFAULT_GRACE_S, allow_zero=True),
    )


def _mrkdwn(text: str) -> str:
    """Slack reads <…> as links and mentions; SQL and error texts contain < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in dsn_mod.redact(text).splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _span(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return labels[0]

    def version(label: str) -> str:
        found = _VERSION.match(label)
        return found.group() if found else label

    return f"{version(labels[0])}…{version(labels[-1])}"


@dataclass(frozen=True)
class NotifierStats:
    sent: int  # answered 2xx
    failed: int  # errors, timeouts and non-2xx answers
    dropped: int  # discarded because the queue was full
    unsent: int  # still queued or in flight


@dataclass(frozen=True)
class _Message:
    text: str
    # started / succeeded / failed: the queue drops progress lines before these.
    essential: bool


class WebhookNotifier:
    """A ProgressSink posting to a Slack-compatible webhook from a daemon thread.

    Every method only formats a line and appends it to a bounded queue: none blocks on the
    network, none raises because of the webhook. When the queue is full the oldest progress
    line is dropped (and counted). Each POST has its own timeout; errors are counted, and
    close() reports them once, naming only scheme://host."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        parsed = parse_webhook_url(url, "the webhook URL")
        self.origin = public_origin(parsed)
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self._url = parsed
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._queue: deque[_Message] = deque()
        self._thread: threading.Thread | None = None
        self._in_flight = False
        self._closing = False
        self._abandoned = False
        self._sent = 0
        self._dropped = 0
        self._failures: Counter[str] = Counter()
        self._action: str | None = None
        self._target: str | None = None
        self._current: str | None = None

    # -- the run as a whole ------------------------------------------------------------------

    def started(self, action: str, target: str, pending: Sequence[str] = ()) -> None:
        """`action` is the verb (migrate, rollback), `target` a password-free name of the
        database (eventgate.dsn.describe), `pending` the labels about to run, if known."""
        self._action, self._target = action, target
        text = f"{_ICONS.get(action, ':arrow_forward:')} eventgate {action} on {target}"
        if pending:
            waiting = "to roll back" if action == "rollback" else "pending"
            text += f": {len(pending)} {waiting} ({_span(pending)})"
        self._enqueue(text, essential=True)

    def succeeded(self, summary: str) -> None:
        self._enqueue(f":white_check_mark: {summary}", essential=True)

    def failed(self, reason: str) -> None:
        what = f"eventgate {self._action} on {self._target}: " if self._action else ""
        during = f"during {self._current}: " if self._current else ""
        detail = _first_line(reason) or "no reason given"
        self._enqueue(f":x: FAILED: {what}{during}{detail}", essential=True)

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
        counts = _plural(len(report.statements), "statement")
        if report.rows:
            counts += f", {_plural(report.rows, 'row')}"
        self._enqueue(f":white_check_mark: {report.label} {done} in {report.duration_s:.2f} s "
                      f"({counts})", essential=False)

    def note(self, text: str) -> None:
        self._enqueue(f":warning: {_first_line(text)}", essential=False)

    # -- the end -----------------------------------------------------------------------------

    def close(self, grace_s: float | None = None) -> list[str]:
        """Stop taking messages, wait at most `grace_s` (default: the notifier's grace) for
        the queue to drain, and return warnings to show the user: failed posts, dropped
        lines, and whether the last messages may not have been delivered. After the grace the
        worker is abandoned (a daemon thread, it cannot keep the process alive)."""
        grace = self.grace_s if grace_s is None else max(0.0, grace_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(grace)
        with self._cond:
            unsent = len(self._queue) + self._in_flight
            if unsent:
                # The worker stops after the request it is stuck in; the caller was told.
                self._abandoned = True
                self._queue.clear()
                self._cond.notify_all()
            return self._warnings(unsent, grace)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to stop after close(); True when it has (or never started).
        For tests and long-lived callers that must not leave the thread behind."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def stats(self) -> NotifierStats:
        with self._cond:
            return NotifierStats(self._sent, sum(self._failures.values()), self._dropped,
                                 len(self._queue) + self._in_flight)

    def _warnings(self, unsent: int, grace: float) -> list[str]:
        warnings = []
        failed = sum(self._failures.values())
        if failed:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in self._failures.most_common())
            warnings.append(f"webhook notifications to {self.origin}: {failed} of "
                            f"{failed + self._sent} failed ({kinds}); the "
                            f"{_NOUN.get(self._action or '', 'migration')} itself was not affected")
        if self._dropped:
            warnings.append(f"webhook notifications to {self.origin}: "
                            f"{_plural(self._dropped, 'progress message')} dropped because the "
                            "webhook could not keep up")
        if unsent:
            warnings.append(f"webhook notifications to {self.origin}: still busy after the "
                            f"{grace:g} s grace, gave up; the final message may not have been "
                            f"delivered ({unsent} unsent or in flight)")
        return warnings

    # -- the worker --------------------------------------------------------------------------

    def _enqueue(self, text: str, *, essential: bool) -> None:
        message = _Message(_mrkdwn(text), essential)
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._max_queue:
                # Never block the producer: make room by dropping the oldest progress line,
                # or, if the queue holds only essential ones, the oldest of those.
                index = next((i for i, m in enumerate(self._queue) if not m.essential), 0)
                del self._queue[index]
                self._dropped += 1
            self._queue.append(message)
            if self._thread is None:
                # Started on the first message, so that an unused notifier costs no thread.
                self._thread = threading.Thread(target=self._work, name="eventgate-webhook",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _next(self) -> _Message | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._abandoned or not self._queue:
                return None
            self._in_flight = True
            return self._queue.popleft()

    def _work(self) -> None:
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
                while (message := self._next()) is not None:
                    failure = self._post(client, message)
                    with self._cond:
                        self._in_flight = False
                        if failure is None:
                            self._sent += 1
                        else:
                            self._failures[failure] += 1
        except Exception as exc:
            # The client itself could not be built (e.g. a broken CA bundle): everything that
            # is left counts as failed, and the thread ends quietly instead of with a traceback.
            with self._cond:
                lost = len(self._queue) + self._in_flight
                self._failures[type(exc).__name__] += lost
                self._queue.clear()
                self._in_flight = False

    def _post(self, client: httpx.Client, message: _Message) -> str | None:
        """None when delivered, else a short kind of failure for the summary. Exception texts
        are never kept: httpx's can quote the URL."""
        try:
            response = client.post(self._url, json={"text": message.text})
        except httpx.TimeoutException:
            return "timeout"
        except httpx.ConnectError:
            return "connection failed"
        except Exception as exc:
            return type(exc).__name__
        if response.is_success:
            return None
        code = response.text.strip()
        if _SLACK_ERROR_CODE.fullmatch(code):
            return f"HTTP {response.status_code} {code}"
        return f"HTTP {response.status_code}"


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
