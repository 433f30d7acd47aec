"""Credentials hidden from what a person reads in a report: values under secret-looking names
(headers, query parameters, JSON keys) masked, and passwords in DSNs and URLs replaced the way
eventgate.dsn.redact replaces them everywhere else.

eventgate.dsn.redact finds DSN passwords in free text and is used here for every string; this
module adds what only structured HTTP data has: names that say their value is a credential, and
a URL's password found by parsing the URL rather than by scanning text."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventgate import dsn as dsn_mod

MASK = "***"
# Header, query parameter and JSON key names whose values are credentials. Substrings, so
# X-Admin-Token, Set-Cookie, access_token and db_password are all caught.
_SECRET_PART = re.compile(r"authorization|cookie|token|secret|passw|pwd|api[-_]?key|credential"
                          r"|session", re.I)
# Query parameters that are credentials only as the whole name (`key`, not `monkey`). Not
# applied to JSON keys: a parity sample's "key" is the row's key.
_SECRET_PARAMS = frozenset({"auth", "key", "sig", "signature"})


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_PART.search(name))


def _is_secret_param(name: str) -> bool:
    return is_secret_name(name) or name.strip().lower() in _SECRET_PARAMS


def redact_value(value: Any) -> Any:
    """The same structure with credentials hidden: values under secret-looking keys masked,
    passwords in DSN-like strings replaced (eventgate.dsn.redact)."""
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and is_secret_name(k) and v is not None
                else redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return dsn_mod.redact(value)
    return value


def redact_header(name: str, value: str) -> str:
    """A header's value as shown: masked under a secret-looking name, else password-free."""
    return MASK if is_secret_name(name) else dsn_mod.redact(value)


def redact_url(url: str) -> str:
    """A URL with its password (as eventgate.dsn.redact masks it) and secret-looking query
    parameters masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        # Parsed, not scanned as dsn.redact scans free text: the authority of a URL is known
        # exactly (a password with a space in it included); masked as dsn.redact masks it, so
        # the same URL reads the same everywhere.
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:****@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret_param(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _is_secret_param(k) else v) for k, v in pairs],
                              safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
