"""Delivering notification lines through a channel from a background thread, through a
bounded queue, so that a failing, slow or hung channel can never fail or delay whoever puts
lines in: the mechanics shared by the webhook (eventgate.migrate.webhook) and email
(eventgate.migrate.mail). What the lines say is eventgate.migrate.notify's."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_GRACE_S = 2.0
# A run posts one line per migration plus a handful more; 100 only fills up when the channel
# stalls, and then dropping old progress beats growing without bound.
DEFAULT_MAX_QUEUE = 100


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


class DeliveryQueue:
    """Lines waiting for a channel (a webhook, a mail server), and the daemon thread that
    delivers them.

    put() only appends to a bounded queue: it never blocks on the network and never raises
    because of the channel. When the queue is full the oldest progress line is dropped (and
    counted). Each delivery has its own timeout; errors are counted, and close() reports them
    once, naming only `origin`. A channel says how its session opens (`_session`) and how one
    line is delivered (`_deliver`: None, or a short kind of failure)."""

    kind = "notifications"  # how warnings name the channel, e.g. "webhook notifications"
    noun = "channel"  # what could not keep up: "webhook", "mail server"

    def __init__(self, origin: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.origin = origin
        self.timeout_s = timeout_s
        self.grace_s = grace_s
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
        message = _Message(self._prepare(text), essential)
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
                self._thread = threading.Thread(
                    target=self._work, name=f"eventgate-{self.kind.split()[0]}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def begin_close(self) -> None:
        """Stop taking lines and let the worker drain what is queued (close() then waits)."""
        with self._cond:
            self._closing = True
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
            warnings.append(f"{self.kind} to {self.origin}: {failed} of "
                            f"{failed + self._sent} failed ({kinds}); the {run} itself was not "
                            "affected")
        if self._dropped:
            warnings.append(f"{self.kind} to {self.origin}: "
                            f"{plural(self._dropped, 'progress message')} dropped because the "
                            f"{self.noun} could not keep up")
        if unsent:
            warnings.append(f"{self.kind} to {self.origin}: still busy after the "
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
            with self._session() as session:
                while (message := self._next()) is not None:
                    failure = self._deliver(session, message.text)
                    with self._cond:
                        self._in_flight = False
                        if failure is None:
                            self._sent += 1
                        else:
                            self._failures[failure] += 1
        except Exception as exc:
            # The session itself could not be opened (e.g. a broken CA bundle): everything that
            # is left counts as failed, and the thread ends quietly instead of with a traceback.
            with self._cond:
                lost = len(self._queue) + self._in_flight
                self._failures[type(exc).__name__] += lost
                self._queue.clear()
                self._in_flight = False

    # -- what a channel says -------------------------------------------------------------------

    def _prepare(self, text: str) -> str:
        return text

    def _session(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _deliver(self, session: Any, text: str) -> str | None:
        raise NotImplementedError
