"""The watch's verdict where CI and QA read the gate's: reports/watch-verdict.json,
reports/watch-junit.xml (one test case per checklist item) and allure-results/ (suite "watch")."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import Label, Status, StatusDetails, TestResult

from eventgate.watch.checklist import FAILED, NOT_CHECKABLE, NOT_PROVEN
from eventgate.watch.run import WatchReport

VERDICT, JUNIT = "watch-verdict.json", "watch-junit.xml"
SUITE = "watch"


def write(report: WatchReport, reports: Path) -> list[Path]:
    reports.mkdir(parents=True, exist_ok=True)
    verdict = reports / VERDICT
    verdict.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n",
                       encoding="utf-8")
    junit = reports / JUNIT
    _junit(report).write(junit, encoding="utf-8", xml_declaration=True)
    _allure(report, reports / "allure-results")
    return [verdict, junit, reports / "allure-results"]


def _junit(report: WatchReport) -> ET.ElementTree[ET.Element]:
    items = report.checklist
    failed = [i for i in items if i.state == FAILED]
    skipped = [i for i in items if i.state in (NOT_PROVEN, NOT_CHECKABLE)]
    seconds = ((report.ended or report.started) - report.started).total_seconds()
    suite = ET.Element("testsuite", name=SUITE, tests=str(len(items)),
                       failures=str(len(failed)), skipped=str(len(skipped)),
                       errors="1" if report.unreachable else "0", time=f"{seconds:.3f}",
                       timestamp=report.started.isoformat())
    for item in items:
        case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.post_deployment",
                             name=item.text, time="0")
        if item.state == FAILED:
            ET.SubElement(case, "failure", message=item.how).text = item.how
        elif item.state in (NOT_PROVEN, NOT_CHECKABLE):
            ET.SubElement(case, "skipped", message=f"{item.state}: {item.how}")
        else:
            ET.SubElement(case, "system-out").text = item.how
    if report.unreachable:
        case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.engine",
                             name="green answers", time="0")
        ET.SubElement(case, "error", message=report.unreachable).text = report.unreachable
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.ElementTree(root)


def _allure(report: WatchReport, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # allure-python-commons ships no type hints for its file logger.
    logger = AllureFileLogger(str(directory))  # type: ignore[no-untyped-call]
    start = int(report.started.timestamp() * 1000)
    stop = int((report.ended or report.started).timestamp() * 1000)
    states = {FAILED: Status.FAILED, NOT_PROVEN: Status.SKIPPED, NOT_CHECKABLE: Status.SKIPPED}
    for item in report.checklist:
        result = TestResult(
            uuid=str(uuid.uuid4()), name=item.text, fullName=f"{SUITE}#{item.text}",
            historyId=f"{SUITE}:{item.text}", start=start, stop=stop,
            status=states.get(item.state, Status.PASSED),
            statusDetails=StatusDetails(message=f"{item.state}: {item.how}"),
            description=f"After the switch, {report.base_url} watched for "
                        f"{report.duration_s:g} s every {report.interval_s:g} s: "
                        f"{report.summary()}",
            labels=[Label(name="suite", value=SUITE),
                    Label(name="parentSuite", value="post-deployment"),
                    Label(name="feature", value="post-deployment checklist")])
        logger.report_result(result)  # type: ignore[no-untyped-call]
