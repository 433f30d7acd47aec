"""Delivering chat lines to a Slack-compatible incoming webhook: each POSTed as `{"text": ...}`
from a background thread, through a bounded queue, so that a failing, slow or hung webhook can
never fail or delay whoever puts lines in. What the lines say is eventgate.migrate.notify's.

A webhook URL's path is its secret: nothing here ever shows more of it than scheme://host."""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from dataclasses import dataclass

import httpx

from eventgate.errors import ConfigError

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_GRACE_S = 2.0
# A run posts one line per migration plus a handful more; 100 only fills up when the webhook
# stalls, and then dropping old progress beats growing without bound.
DEFAULT_MAX_QUEUE = 100
# Slack answers errors with a bare code ("invalid_payload", "no_service"); a body of any other
# shape could echo the request, and with it the secret path, so it is never shown.
_SLACK_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


def public_origin(url: httpx.URL) -> str:
    """scheme://host[:port] of a webhook: the path (and any query or user info) of a Slack
    webhook URL is its secret, so this is all of it that is ever shown."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port is not None else "")


def parse_webhook_url(url: str, source: str) -> httpx.URL:
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


def _mrkdwn(text: str) -> str:
    """Slack reads <…> as links and mentions; SQL and error texts contain < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class NotifierStats:
    sent: int  # answered 2xx
    failed: int  # errors, timeouts and non-2xx answers
    dropped: int  # discarded because the queue was full
    unsent: int  # still queued or in flight


@dataclass(frozen=True)
class _Message:
    text: str
    # Lines a run cannot do without (started / succeeded / failed): a full queue drops
    # progress lines before these.
    essential: bool


class WebhookQueue:
    """Lines waiting for the webhook, and the daemon thread that POSTs them.

    put() only appends to a bounded queue: it never blocks on the network and never raises
    because of the webhook. When the queue is full the oldest progress line is dropped (and
    counted). Each POST has its own timeout; errors are counted, and close() reports them once,
    naming only scheme://host."""

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

    def put(self, text: str, *, essential: bool) -> None:
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
                # Started on the first message, so that an unused queue costs no thread.
                self._thread = threading.Thread(target=self._work, name="eventgate-webhook",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self, grace_s: float | None = None, *, run: str = "migration") -> list[str]:
        """Stop taking lines, wait at most `grace_s` (default: the queue's grace) for it to
        drain, and return warnings to show the user: failed posts, dropped lines, and whether
        the last lines may not have been delivered; `run` names what was not affected by them.
        After the grace the worker is abandoned (a daemon thread, it cannot keep the process
        alive)."""
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
            return self._warnings(unsent, grace, run)

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

    def _warnings(self, unsent: int, grace: float, run: str) -> list[str]:
        warnings = []
        failed = sum(self._failures.values())
        if failed:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in self._failures.most_common())
            warnings.append(f"webhook notifications to {self.origin}: {failed} of "
                            f"{failed + self._sent} failed ({kinds}); the {run} itself was not "
                            "affected")
        if self._dropped:
            warnings.append(f"webhook notifications to {self.origin}: "
                            f"{plural(self._dropped, 'progress message')} dropped because the "
                            "webhook could not keep up")
        if unsent:
            warnings.append(f"webhook notifications to {self.origin}: still busy after the "
                            f"{grace:g} s grace, gave up; the final message may not have been "
                            f"delivered ({unsent} unsent or in flight)")
        return warnings

    # -- the worker --------------------------------------------------------------------------

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
