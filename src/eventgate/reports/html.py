"""`eventgate report`: the Allure results of a gate run as one self-contained HTML file.

Allure 3 (npm package `allure`, pinned in tools/allure/package-lock.json) renders the results
with its Allure 2-style renderer in single-file mode: data, scripts and styles inlined, so QA can
open the file from disk, offline. Node runs the locally installed CLI; nothing is installed
globally and nothing is downloaded at report time except by the one `npm ci` that installs it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eventgate
from eventgate.errors import EventgateError
from eventgate.units import human_bytes

STATUSES = ("passed", "failed", "broken", "skipped")
# Shown wherever node is missing or too old; the versions come from package.json's engines.
NODE_HINT = ("install Node.js {need} or newer with npm: https://nodejs.org (or NodeSource's "
             "Debian packages); Debian 12's own nodejs package is 18, too old for Allure 3 "
             "(Debian 13's, 20.19, is enough: apt-get install nodejs npm)")
# Hosts and calls of tracking scripts. The allure2 template embeds Google Tag Manager unless
# ALLURE_NO_ANALYTICS=true; the bundle's own inert `window.dataLayer.push` is not a tracker.
TRACKERS = ("googletagmanager", "google-analytics", "gtag(", "gtag/js", "analytics.js",
            "gtm.js", "doubleclick.net", "hotjar", "segment.io", "mixpanel", "plausible.io")
NPM_TIMEOUT_S = 600
GENERATE_TIMEOUT_S = 600


# A one-line "working on it" display around a slow step (rich's Console.status).
Status = Callable[[str], AbstractContextManager[Any]]


class ReportError(EventgateError):
    """The HTML report could not be built: what is missing and how to get it."""


@dataclass
class Tally:
    """Tests in the results as Allure shows them: one per test, its last attempt."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    unknown: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.unknown

    def describe(self) -> str:
        parts = ", ".join(f"{self.counts[s]} {s}" for s in STATUSES)
        if self.unknown:
            parts += f", {self.unknown} unknown"
        return f"{self.total} test{'' if self.total == 1 else 's'}: {parts}"


@dataclass
class Report:
    html: Path
    size: int
    tally: Tally
    duration_s: float
    npm_ci_ran: bool

    def summary(self) -> str:
        return (f"{self.html} ({human_bytes(self.size)}, one file, opens offline) — "
                f"{self.tally.describe()}")


def count_results(results: Path) -> Tally:
    """Count the *-result.json files written by allure-pytest. A test rerun (pytest-rerunfailures,
    or two runs into one directory) leaves one file per attempt with the same historyId; Allure
    shows the last attempt and lists the others as retries, so only that one is counted."""
    latest: dict[str, tuple[int, str]] = {}
    tally = Tally()
    for path in sorted(results.glob("*-result.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key = str(data.get("historyId") or data.get("uuid") or path.name)
            stop = int(data.get("stop") or 0)
            status = str(data.get("status") or "unknown")
        except (OSError, ValueError, AttributeError) as exc:
            # A run killed mid-write leaves a truncated file; Allure skips it too.
            tally.unreadable.append(f"{path.name} ({exc.__class__.__name__})")
            continue
        if key not in latest or stop >= latest[key][0]:
            latest[key] = (stop, status)
    for _, status in latest.values():
        if status in tally.counts:
            tally.counts[status] += 1
        else:
            tally.unknown += 1
    return tally


def check_results(results: Path) -> None:
    if not results.is_dir():
        raise ReportError(f"no Allure results at {results}: run `eventgate gate` first (it "
                          "writes reports/allure-results/), or pytest with --alluredir "
                          f"{results}, then eventgate report")
    if not any(results.glob("*-result.json")):
        raise ReportError(f"{results} holds no test results (*-result.json): run `eventgate "
                          f"gate` first, or pytest with --alluredir {results}, then eventgate "
                          "report")


# --- Node, npm and the pinned Allure --------------------------------------------------------


def find_tools() -> Path:
    """tools/allure of the checkout this package runs from, or of the working directory."""
    for root in (Path(eventgate.__file__).resolve().parents[2], Path.cwd()):
        candidate = root / "tools" / "allure"
        if (candidate / "package-lock.json").is_file():
            return candidate
    raise ReportError("tools/allure/package.json and package-lock.json (the pinned Allure 3) "
                      "were not found next to the eventgate package or in the working "
                      "directory; run eventgate report from a checkout of the eventgate "
                      "repository")


def _version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(text)
    return tuple(int(part or 0) for part in match.groups())


def needed_node(tools: Path) -> tuple[int, ...]:
    """The lowest node that package.json's engines allow (">=20.19.0"): the highest lower bound
    among Allure's dependencies, kept there by hand when the pin moves."""
    spec = json.loads((tools / "package.json").read_text(encoding="utf-8"))
    return _version(spec.get("engines", {}).get("node", ">=20.19.0"))


def pinned_allure(tools: Path) -> str:
    spec = json.loads((tools / "package.json").read_text(encoding="utf-8"))
    return str(spec["dependencies"]["allure"])


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_node(tools: Path, results: Path) -> str:
    """The node executable on PATH, if it is new enough for the pinned Allure."""
    need = _dotted(needed_node(tools))
    node = shutil.which("node")
    if node is None:
        raise ReportError(f"node {need} or newer and npm are needed for the HTML report and "
                          f"node is not on PATH: {NODE_HINT.format(need=need)}; the results in "
                          f"{results} are complete without it")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                             check=True).stdout.strip()
        have = _version(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ReportError(f"{node} --version did not answer with a version ({exc}): "
                          f"{NODE_HINT.format(need=need)}") from exc
    if have < needed_node(tools):
        raise ReportError(f"node {_dotted(have)} at {node} is too old for Allure "
                          f"{pinned_allure(tools)}, which needs node {need} or newer: "
                          f"{NODE_HINT.format(need=need)}")
    return node


def installed(tools: Path) -> bool:
    """node_modules holds the pinned Allure (a bumped pin reinstalls)."""
    manifest = tools / "node_modules" / "allure" / "package.json"
    if not (tools / "node_modules" / ".bin" / "allure").exists() or not manifest.is_file():
        return False
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except ValueError:
        return False
    return bool(version == pinned_allure(tools))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # No Google Tag Manager in the HTML (the allure2 template reads this), and no npm chatter.
    env.update(ALLURE_NO_ANALYTICS="true", NO_COLOR="1", npm_config_update_notifier="false",
               npm_config_fund="false", npm_config_audit="false")
    return env


@contextmanager
def _install_lock(tools: Path) -> Iterator[None]:
    # Two reports at once (pytest -n auto, two terminals) must not run npm ci into the same
    # node_modules; the lock file itself is tracked, so locking it leaves nothing behind.
    with (tools / "package-lock.json").open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_allure(tools: Path, results: Path, status: Status) -> bool:
    """Install the pinned Allure with npm ci unless it is there; True when it ran."""
    if installed(tools):
        return False
    with _install_lock(tools):
        if installed(tools):  # another process installed it while this one waited
            return False
        npm = shutil.which("npm")
        if npm is None:
            need = _dotted(needed_node(tools))
            raise ReportError(f"npm is needed once, to install Allure into {tools}/node_modules, "
                              f"and is not on PATH: {NODE_HINT.format(need=need)}; the results "
                              f"in {results} are complete without it")
        with status(f"installing Allure {pinned_allure(tools)} for the HTML report (npm ci "
                    f"in {tools}, once)"):
            try:
                done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=tools,
                                      env=_env(), capture_output=True, text=True,
                                      timeout=NPM_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as exc:
                raise ReportError(f"npm ci in {tools} did not finish in {NPM_TIMEOUT_S} s; "
                                  "check that the npm registry is reachable") from exc
        if done.returncode != 0 or not installed(tools):
            raise ReportError(f"npm ci in {tools} failed (exit {done.returncode}); it needs "
                              f"the npm registry once. npm said:\n{_tail(done)}")
    return True


def _tail(done: subprocess.CompletedProcess[str], lines: int = 20) -> str:
    text = (done.stderr or "") + (done.stdout or "")
    return "\n".join(text.strip().splitlines()[-lines:]) or "(nothing)"


# --- Generating and checking the HTML -------------------------------------------------------


def allure_config(name: str, language: str) -> dict[str, Any]:
    """Only the Allure 2-style renderer, as one file. `singleFile` is the option
    @allurereport/plugin-allure2 reads (dist/plugin.js); the agent plugin, which Allure adds
    when it is not named, is switched off: it writes nothing QA reads."""
    return {
        "name": name,
        "plugins": {
            "allure2": {"options": {"singleFile": True, "reportName": name,
                                    "reportLanguage": language}},
            "agent": {"enabled": False},
        },
    }


def generate(node: str, tools: Path, results: Path, work: Path, name: str,
             language: str) -> Path:
    """Run the pinned CLI into work/out; returns the index.html it wrote."""
    work = work.resolve()  # the CLI runs with cwd=work, so relative paths would point nowhere
    config = work / "allurerc.json"
    config.write_text(json.dumps(allure_config(name, language), indent=2), encoding="utf-8")
    out = work / "out"
    # The node that was version-checked runs the CLI, not whichever the shebang's env finds.
    command = [node, str(tools / "node_modules" / ".bin" / "allure"), "generate", "--config",
               str(config), "--output", str(out), str(results.resolve())]
    try:
        done = subprocess.run(command, cwd=work, env=_env(), capture_output=True, text=True,
                              timeout=GENERATE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ReportError(f"allure generate did not finish in {GENERATE_TIMEOUT_S} s") from exc
    html = out / "index.html"
    if done.returncode != 0 or not html.is_file():
        raise ReportError(f"allure generate failed (exit {done.returncode}) on {results}; "
                          f"it said:\n{_tail(done)}")
    return html


_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_REF = re.compile(r"""\b(src|href)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,([A-Za-z0-9+/=]+)")


def html_problems(html: str) -> list[str]:
    """Why this HTML is not one offline, tracking-free file: tracking scripts (in the page or
    in its inlined scripts), and scripts or styles it loads from elsewhere."""
    problems: list[str] = []
    lowered = html.lower()
    found = {marker for marker in TRACKERS if marker in lowered}
    for blob in _DATA_URI.findall(html):
        text = base64.b64decode(blob).decode("utf-8", "replace").lower()
        found |= {marker for marker in TRACKERS if marker in text}
    if found:
        problems.append("it holds an analytics/tracking script (" + ", ".join(sorted(found)) +
                        ") although ALLURE_NO_ANALYTICS=true was set: check what the pinned "
                        "Allure's template embeds now")
    for tag in _TAG.finditer(html):
        for _, ref in _REF.findall(tag.group(0)):
            if not ref.startswith("data:") and ref != "#":
                problems.append(f"it loads {ref} ({tag.group(1)}), so it is not one file that "
                                "works offline")
    return problems


def build_report(results: Path, output: Path, *, name: str, language: str = "en",
                 status: Status) -> Report:
    """Generate the single-file report from `results` into `output` (an .html file)."""
    started = time.monotonic()
    check_results(results)
    tally = count_results(results)
    tools = find_tools()
    node = check_node(tools, results)
    ran_npm = ensure_allure(tools, results, status)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Generated beside the target and moved into place only when it passes the checks, so a
    # failed or refused run never leaves a half-written or tracking report where QA looks.
    with tempfile.TemporaryDirectory(prefix=".eventgate-report-", dir=output.parent) as tmp:
        with status(f"generating the HTML report from {results}"):
            html = generate(node, tools, results, Path(tmp), name, language)
        problems = html_problems(html.read_text(encoding="utf-8", errors="replace"))
        if problems:
            raise ReportError(f"the generated report was refused and not written to {output}: "
                              + "; ".join(problems))
        os.replace(html, output)
    return Report(output, output.stat().st_size, tally, time.monotonic() - started, ran_npm)
