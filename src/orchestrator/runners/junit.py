"""Reading what a test suite found: pytest's JUnit XML or its summary line, or unittest's
own summary ("Ran N tests", "FAILED (failures=1, errors=2)") and its FAIL:/ERROR: blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from junitparser import Error, Failure, JUnitXml, JUnitXmlError, Skipped, TestCase, TestSuite

# Counts of a pytest summary line: "=== 2 failed, 10 passed, 1 skipped in 0.52s ===".
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
_SUMMARY = re.compile(
    r"\b\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b"
    r".*\bin [\d.]+s\b"
)
_SHORT_MAX = 300


@dataclass(frozen=True)
class Failing:
    """A failing test and its short message."""

    test_id: str
    message: str


@dataclass(frozen=True)
class Counts:
    """What a suite found, per test item."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    duration_s: float | None = None
    failing: tuple[Failing, ...] = field(default_factory=tuple)
    source: str = "none"  # junit, summary line, unittest summary, or none

    @property
    def tests_failed(self) -> int:
        """Failures and errors: every test item that did not pass."""
        return self.failed + self.errors


def summary_counts(output: str) -> Counts | None:
    """Counts from the last pytest-style summary line of `output`, if there is one."""
    for line in reversed(output.splitlines()):
        if not _SUMMARY.search(line):
            continue
        found: dict[str, int] = {}
        for number, word in _COUNT.findall(line):
            key = "errors" if word.startswith("error") else word
            found[key] = found.get(key, 0) + int(number)
        duration = re.search(r"\bin ([\d.]+)s\b", line)
        return Counts(
            passed=found.get("passed", 0) + found.get("xpassed", 0),
            failed=found.get("failed", 0),
            errors=found.get("errors", 0),
            skipped=found.get("skipped", 0) + found.get("xfailed", 0),
            duration_s=float(duration.group(1)) if duration else None,
            source="summary line",
        )
    return None


# unittest: "Ran 904 tests in 1.234s", then "OK", "OK (skipped=3)" or "FAILED (failures=1, ...)".
_RAN = re.compile(r"^Ran (\d+) tests? in ([\d.]+)s$")
_OUTCOME = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$")
# "FAIL: test_bad (tests.test_x.Sums.test_bad)" (3.11; older: "(tests.test_x.Sums)").
_BLOCK_HEAD = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\S+) \(([\w.]+)\)")
_RULE = re.compile(r"^(=+|-+)$")


def unittest_counts(output: str) -> Counts | None:
    """Counts from unittest's summary at the end of `output`, with its failing tests and the
    last line of each one's traceback; None when there is no such summary."""
    lines = output.splitlines()
    for at in range(len(lines) - 1, -1, -1):
        ran = _RAN.match(lines[at].strip())
        if ran is None:
            continue
        outcome = next((m for line in lines[at + 1 :] if (m := _OUTCOME.match(line.strip()))), None)
        if outcome is None:
            return None
        found = {
            key.strip(): int(value)
            for key, _, value in (
                part.partition("=") for part in (outcome.group(2) or "").split(",")
            )
            if value.strip().isdigit()
        }
        failed = found.get("failures", 0) + found.get("unexpected successes", 0)
        errors = found.get("errors", 0)
        skipped = found.get("skipped", 0) + found.get("expected failures", 0)
        return Counts(
            passed=max(0, int(ran.group(1)) - failed - errors - skipped),
            failed=failed,
            errors=errors,
            skipped=skipped,
            duration_s=float(ran.group(2)),
            failing=_unittest_failing(lines[:at]),
            source="unittest summary",
        )
    return None


def _unittest_failing(lines: list[str]) -> tuple[Failing, ...]:
    failing = []
    for at, line in enumerate(lines):
        head = _BLOCK_HEAD.match(line)
        if head is None:
            continue
        name, where = head.group(2), head.group(3)
        test_id = where if where.endswith(f".{name}") else f"{where}.{name}"
        body: list[str] = []
        for text in lines[at + 1 :]:
            if _BLOCK_HEAD.match(text) or (body and _RULE.match(text.strip()) and body[-1] == ""):
                break
            body.append(text)
        message = next(
            (t.strip() for t in reversed(body) if t.strip() and not _RULE.match(t.strip())),
            head.group(1),
        )
        failing.append(Failing(test_id, message[:_SHORT_MAX]))
    return tuple(failing)


def _test_id(case: TestCase) -> str:
    # xunit1 reports carry the file: "tests/test_x.py" + class path + name is pytest's node id.
    path = case._elem.get("file")
    classname = case.classname or ""
    if path:
        module = ".".join(PurePosixPath(path).with_suffix("").parts)
        inner = classname[len(module) :].lstrip(".") if classname.startswith(module) else ""
        return "::".join(part for part in (path, inner.replace(".", "::"), case.name) if part)
    return f"{classname}::{case.name}" if classname else str(case.name)


def _short(result: Failure | Error) -> str:
    message = (result.message or result.text or type(result).__name__).strip()
    first = message.splitlines()[0] if message else type(result).__name__.lower()
    return first if len(first) <= _SHORT_MAX else first[: _SHORT_MAX - 1] + "…"


def junit_counts(path: Path) -> Counts | None:
    """Counts and failing tests from a JUnit XML report; None when it is missing or broken."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        xml = JUnitXml.fromfile(str(path))
    except (JUnitXmlError, OSError, SyntaxError, ValueError):
        return None
    suites: list[TestSuite] = list(xml) if isinstance(xml, JUnitXml) else [xml]
    passed = failed = errors = skipped = 0
    duration = 0.0
    failing: list[Failing] = []
    for suite in suites:
        duration += float(suite.time or 0.0)
        for case in suite:
            results = case.result
            if any(isinstance(r, Error) for r in results):
                errors += 1
            elif any(isinstance(r, Failure) for r in results):
                failed += 1
            elif any(isinstance(r, Skipped) for r in results):
                skipped += 1
                continue
            else:
                passed += 1
                continue
            bad = next(r for r in results if isinstance(r, Failure | Error))
            failing.append(Failing(_test_id(case), _short(bad)))
    return Counts(passed, failed, errors, skipped, duration, tuple(failing), "junit")
