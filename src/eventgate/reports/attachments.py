"""What a test attaches to its Allure result when allure-pytest is collecting results: a check's
JSON (diff samples included), the query plan and the budget figures beside a budget's result,
and the engine tests' HTTP requests with their responses. Nothing attached carries a password
or a token (eventgate.reports.redact)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx

from eventgate import dsn as dsn_mod
from eventgate.checks.budget_report import budget_statistics, plan_text
from eventgate.checks.result import CheckResult
from eventgate.reports.redact import redact_header, redact_url, redact_value

HTTP_EXCHANGES_PER_TEST = 50  # keeps a schemathesis-sized test from filling the results dir
HTTP_BODY_LIMIT = 64 * 1024  # characters of each body kept in an attachment
PARITY_RESULTS_PER_TEST = 10  # a property test runs the parity check once per example


# --- per-test state, kept by the plugin ------------------------------------------------------

@dataclass
class _TestState:
    collecting: bool  # allure-pytest writes results in this run
    attached: list[CheckResult] = field(default_factory=list)
    parity_seen: int = 0


# A stack, not one slot: pytester runs a whole session inside a test of this one.
_tests: list[_TestState] = []


def begin_test(collecting: bool) -> None:
    _tests.append(_TestState(collecting))


def end_test() -> None:
    if _tests:
        _tests.pop()


def _current() -> _TestState | None:
    return _tests[-1] if _tests else None


def _allure() -> ModuleType | None:
    state = _current()
    if state is not None and not state.collecting:
        return None  # nobody would read it: skip the serialising
    try:
        import allure
    except ImportError:  # reporting is optional; the assertion carries the message anyway
        return None
    return allure


# --- check results -----------------------------------------------------------------------------

def attach(result: CheckResult) -> None:
    """The check's JSON; beside a query plan its text, beside a budget its figures."""
    allure = _allure()
    if allure is None:
        return
    state = _current()
    if state is not None:
        if any(seen is result for seen in state.attached):
            return  # already attached when the parity check ran (observe_parity)
        state.attached.append(result)
    title = f"{result.check}: {result.subject}"
    allure.attach(json.dumps(redact_value(result.to_json()), indent=2, default=str),
                  name=title, attachment_type=allure.attachment_type.JSON)
    data = result.data
    if result.check == "query plan" and isinstance(data.get("plan"), dict):
        allure.attach(dsn_mod.redact(plan_text(data["plan"])), name=f"EXPLAIN {result.subject}",
                      attachment_type=allure.attachment_type.TEXT)
    if result.check == "query budget" and "client_ms" in data:
        if isinstance(data.get("explain_analyze"), dict):
            allure.attach(dsn_mod.redact(plan_text(data["explain_analyze"])),
                          name=f"EXPLAIN (ANALYZE, BUFFERS) {result.subject}",
                          attachment_type=allure.attachment_type.TEXT)
        allure.attach(json.dumps(redact_value(budget_statistics(result)), indent=2,
                                 default=str),
                      name=f"statistics {result.subject}",
                      attachment_type=allure.attachment_type.JSON)


def observe_parity(result: CheckResult) -> None:
    """A content-parity result, attached to the test that ran it, pass or fail (registered in
    eventgate.checks.parity.observers by the plugin)."""
    state = _current()
    if state is None or not state.collecting or state.parity_seen >= PARITY_RESULTS_PER_TEST:
        return
    state.parity_seen += 1
    attach(result)


# --- HTTP exchanges ----------------------------------------------------------------------------

def _headers(headers: httpx.Headers) -> list[str]:
    lines = []
    for raw_name, raw_value in headers.raw:  # as sent, in the sender's spelling
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        lines.append(f"{name}: {redact_header(name, value)}")
    return lines


def _body(content: bytes, content_type: str, limit: int) -> str:
    if not content:
        return "(no body)"
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        # Malformed on purpose (the bad-input tests): then shown as sent.
        with contextlib.suppress(ValueError):
            document = redact_value(json.loads(text))
            text = json.dumps(document, indent=2, ensure_ascii=False)
            if len(text) > limit:  # deep nesting: indentation would be most of what is kept
                text = json.dumps(document, ensure_ascii=False)
    # Before cutting: half a DSN would no longer be recognised.
    text = dsn_mod.redact(text).replace("\x00", "\\x00")
    if len(text) > limit:
        text = (text[:limit] + f"\n… {len(text) - limit} more characters not kept "
                f"({len(content)} bytes in all)")
    return text


def _request_body(request: httpx.Request, limit: int) -> str:
    try:
        content = request.content
    except httpx.RequestNotRead:
        return "(streamed body, not kept)"
    return _body(content, request.headers.get("content-type", ""), limit)


def exchange_text(response: httpx.Response, limit: int = HTTP_BODY_LIMIT) -> str:
    """A request and its response as a person reads them, credentials masked."""
    request = response.request
    elapsed = ""
    with contextlib.suppress(RuntimeError):  # elapsed is set only once the body is closed
        elapsed = f"  ({response.elapsed.total_seconds() * 1000:.0f} ms)"
    lines = [f"{request.method} {redact_url(str(request.url))}", *_headers(request.headers), "",
             _request_body(request, limit), "", "-" * 72,
             f"{response.http_version} {response.status_code} {response.reason_phrase}{elapsed}",
             *_headers(response.headers), "",
             _body(response.content, response.headers.get("content-type", ""), limit)]
    return "\n".join(lines) + "\n"


class HttpExchanges:
    """httpx event hooks that attach each request and its response to the running test, up to
    a limit per client (the `api` fixture makes one client per test)."""

    def __init__(self, limit: int = HTTP_EXCHANGES_PER_TEST,
                 body_limit: int = HTTP_BODY_LIMIT) -> None:
        self.limit = limit
        self.body_limit = body_limit
        self.seen = 0

    @property
    def event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"response": [self.on_response]}

    def on_response(self, response: httpx.Response) -> None:
        allure = _allure()
        if allure is None:
            return
        self.seen += 1
        if self.seen > self.limit:
            if self.seen == self.limit + 1:
                allure.attach(f"Only the first {self.limit} requests of this test are "
                              "attached.\n", name="HTTP: further requests not attached",
                              attachment_type=allure.attachment_type.TEXT)
            return
        # The body is read here, before the caller gets the response; httpx keeps it.
        response.read()
        url = urlsplit(redact_url(str(response.request.url)))
        target = url.path + (f"?{url.query}" if url.query else "")
        name = f"HTTP {response.request.method} {target}"[:110] + f" -> {response.status_code}"
        allure.attach(exchange_text(response, self.body_limit), name=name,
                      attachment_type=allure.attachment_type.TEXT)
