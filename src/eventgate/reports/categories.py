"""categories.json: how Allure sorts what did not pass, so infrastructure trouble (timeouts, an
engine or a database out of reach) stands apart from product defects, gates not proven and
defects of the tests themselves."""

from __future__ import annotations

import re
from typing import Any

# Allure 2 matches a regex against the whole message (Java's String.matches) and Allure 3 finds
# it anywhere, so every pattern is anchored and padded with [\s\S]* (no inline flags: JavaScript
# has none). Allure 2 files a result under every category it matches and Allure 3 under the
# first, so each category excludes the patterns of those before it, to agree in both.
_INFRA = (
    ("Infrastructure: timeout",
     "A statement or an HTTP request ran out of time. On a shared system this is load or "
     "contention; run again before reading it as a defect.",
     # Lock timeouts are left out on purpose: the runner's handling of them is under test.
     r"canceling statement due to statement timeout|timeout expired|"
     r"(ReadTimeout|ConnectTimeout|WriteTimeout|PoolTimeout|TimeoutExpired|TimeoutError)"),
    ("Infrastructure: engine unreachable",
     "The engine refused or dropped the connection, or answered 503 while its database was "
     "away.",
     r"httpx\.(ConnectError|RemoteProtocolError|ReadError|NetworkError)|"
     r"[Ss]erver disconnected without sending a response|503 Service Unavailable|"
     r"[Aa]ll connection attempts failed"),
    ("Infrastructure: database unreachable",
     "PostgreSQL could not be reached or went away: not a finding about the migration. Check "
     "the server, the network and the DSN, then run again.",
     r"[Cc]onnection refused|[Cc]ould not connect|connection failed|"
     r"server closed the connection|terminating connection|"
     r"the database system is (starting up|shutting down|in recovery mode)|too many clients|"
     r"ProvisioningError|no PostgreSQL server to test against|[Nn]o space left on device"),
)


def _matching(pattern: str, excluding: list[str]) -> str:
    exclude = rf"(?![\s\S]*({'|'.join(excluding)}))" if excluding else ""
    return rf"^{exclude}[\s\S]*({pattern})[\s\S]*$"


def _categories() -> list[dict[str, Any]]:
    categories: list[dict[str, Any]] = []
    seen: list[str] = []
    for name, description, pattern in _INFRA:
        categories.append({"name": name, "description": description,
                           "matchedStatuses": ["failed", "broken"],
                           "messageRegex": _matching(pattern, seen)})
        seen.append(pattern)
    anything_else = rf"^(?![\s\S]*({'|'.join(seen)}))[\s\S]*$"
    categories += [
        {"name": "Product defects: a gate failed",
         "description": "A gate found the migration, the views or the engine wrong: data lost "
                        "or changed, a missing index, a budget missed, an API answer that "
                        "disagrees with the database. This is what blocks the traffic switch.",
         "matchedStatuses": ["failed"], "messageRegex": anything_else},
        {"name": "Not proven: the data cannot exercise the gate",
         "description": "Neither a pass nor a failure: the database under test holds no data "
                        "that could exercise this gate (no row to compare, no value to draw a "
                        "parameter from). The message says what it looked for. eventgate gate "
                        "--require-proof turns these into a no-go.",
         "matchedStatuses": ["skipped"], "messageRegex": r"^[\s\S]*not proven: [\s\S]*$"},
        {"name": "Test defects",
         "description": "The test itself broke (an unexpected exception, not a failed "
                        "assertion): look at the suite before the product.",
         "matchedStatuses": ["broken"], "messageRegex": anything_else},
    ]
    return categories


CATEGORIES: list[dict[str, Any]] = _categories()


def categorize(status: str, message: str) -> str | None:
    """The first category a result falls into, as Allure 3 decides (for tests and for anyone
    checking a message by hand)."""
    for category in CATEGORIES:
        if status in category["matchedStatuses"] and re.search(category["messageRegex"],
                                                               message):
            return str(category["name"])
    return None
