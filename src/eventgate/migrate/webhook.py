"""Delivering chat lines to a Slack-compatible incoming webhook: each POSTed as `{"text": ...}`
from a background thread, through a bounded queue, so that a failing, slow or hung webhook can
never fail or delay whoever puts lines in. What the lines say is eventgate.migrate.notify's.

A webhook URL's path is its secret: nothing here ever shows more of it than scheme://host."""

from __future__ import annotations

import re
from typing import Any

import httpx

from eventgate import http_client
from eventgate.errors import ConfigError
from eventgate.migrate.delivery import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_QUEUE,
    DEFAULT_TIMEOUT_S,
    DeliveryQueue,
)

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


class WebhookQueue(DeliveryQueue):
    """Lines for a Slack-compatible webhook, each POSTed as {"text": ...}; only its
    scheme://host is ever shown."""

    kind = "webhook notifications"
    noun = "webhook"

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        parsed = parse_webhook_url(url, "the webhook URL")
        super().__init__(public_origin(parsed), timeout_s=timeout_s, grace_s=grace_s,
                         max_queue=max_queue)
        self._url = parsed

    def _prepare(self, text: str) -> str:
        return _mrkdwn(text)

    def _session(self) -> httpx.Client:
        return http_client.client(timeout=self.timeout_s, follow_redirects=False)

    def _deliver(self, session: Any, text: str) -> str | None:
        """None when delivered, else a short kind of failure for the summary. Exception texts
        are never kept: httpx's can quote the URL."""
        try:
            response = session.post(self._url, json={"text": text})
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
