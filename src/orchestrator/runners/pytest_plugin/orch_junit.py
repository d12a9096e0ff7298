"""A lean JUnit XML report for pytest, loaded by the test-runner (`-p orch_junit`).

pytest's own --junitxml builds an XML tree with every test's captured output and costs about
a tenth of the run on a suite of fast tests. This writer adds no per-test work at all: at the
end of the session it reads the reports pytest's terminal reporter already keeps (the same
ones its summary line counts) and writes a line per test, with the failure text of the
failing ones. It runs inside the repo's own interpreter, so it imports only the standard
library.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from xml.sax.saxutils import escape, quoteattr

OPTION = "--orch-junit"
TEXT_MAX = 20_000
# terminalreporter.stats key -> (JUnit element, counted as)
KINDS = {
    "passed": (None, "passed"),
    "xpassed": (None, "passed"),
    "failed": ("failure", "failures"),
    "error": ("error", "errors"),
    "skipped": ("skipped", "skipped"),
    "xfailed": ("skipped", "skipped"),
}


def pytest_addoption(parser: Any) -> None:
    parser.addoption(OPTION, default=None, help="write a lean JUnit XML report to this file")


def pytest_sessionfinish(session: Any) -> None:
    path = session.config.getoption(OPTION)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not path or reporter is None:
        return
    totals = {"passed": 0, "failures": 0, "errors": 0, "skipped": 0}
    lines: list[str] = []
    elapsed = 0.0
    for key, (element, counted) in KINDS.items():
        for report in reporter.stats.get(key, ()):
            if not hasattr(report, "nodeid") or not report.nodeid:
                continue  # a collection error report without a test
            totals[counted] += 1
            elapsed += getattr(report, "duration", 0.0) or 0.0
            lines.append(_case(report, element))
    suite = (
        f'<testsuite name="pytest" tests="{sum(totals.values())}" failures="{totals["failures"]}" '
        f'errors="{totals["errors"]}" skipped="{totals["skipped"]}" time="{elapsed:.3f}">'
    )
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>' + suite + "\n")
        out.write("\n".join(lines))
        out.write("\n</testsuite></testsuites>\n")


def _case(report: Any, element: str | None) -> str:
    path, _, rest = report.nodeid.partition("::")
    parts = rest.split("::") if rest else [report.nodeid]
    module = ".".join(PurePosixPath(path).with_suffix("").parts)
    classname = ".".join([module, *parts[:-1]])
    head = (
        f"<testcase classname={quoteattr(classname)} name={quoteattr(parts[-1])} "
        f'file={quoteattr(path)} time="{getattr(report, "duration", 0.0) or 0.0:.3f}"'
    )
    if element is None:
        return head + "/>"
    text = str(report.longrepr) if report.longrepr is not None else ""
    message = quoteattr(_message(report, text))
    if element == "skipped":
        return f"{head}><skipped message={message}/></testcase>"
    return f"{head}><{element} message={message}>{escape(text[:TEXT_MAX])}</{element}></testcase>"


def _message(report: Any, text: str) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        message = str(crash.message)
    elif isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        message = str(report.longrepr[2])  # a skip: (file, line, reason)
    else:
        message = text.strip().splitlines()[-1] if text.strip() else report.when
    if report.when in ("setup", "teardown") and report.failed:
        message = f'failed on {report.when} with "{message}"'
    return message.splitlines()[0][:300] if message else ""
