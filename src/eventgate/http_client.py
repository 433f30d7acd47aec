"""HTTP clients with one TLS context for the whole process.

httpx builds a new SSL context for every client it makes, and `httpx.get` makes a client per
call: loading the CA bundle costs about 40 ms of CPU each time, even for the plain-HTTP
loopback engines a gate talks to hundreds of times (measured: 2.5 s of a 30 s gate, a quarter
of its test process's CPU). The context here is made once, from the same CA settings httpx
reads (SSL_CERT_FILE, SSL_CERT_DIR, else certifi's bundle), and handed to every client, so
verification is exactly what httpx alone would do."""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The default verifying context, as httpx would build it, made once per process."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def client(**options: Any) -> httpx.Client:
    """httpx.Client(**options) with the shared TLS context."""
    return httpx.Client(verify=tls_context(), **options)


def get(url: str, **options: Any) -> httpx.Response:
    """httpx.get with the shared TLS context."""
    return httpx.get(url, verify=tls_context(), **options)


def post(url: str, **options: Any) -> httpx.Response:
    """httpx.post with the shared TLS context."""
    return httpx.post(url, verify=tls_context(), **options)
