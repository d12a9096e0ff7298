"""The one mapping from a suite's exit code to a status, shared by every runner.

| exit                                         | status | meaning                            |
|----------------------------------------------|--------|------------------------------------|
| 0                                            | PASSED | the suite ran and passed           |
| 1, 2                                         | FAILED | the suite ran and found failures   |
| 3, 4, 5, 126, 127, other codes, a signal     | ERROR  | the suite did not run meaningfully |

pytest 2 is a collection error and make 2 a failed target: both found a fault in the code.
pytest 3-5 are an internal error, a usage error and "no tests collected"; 126 and 127 are
"not executable" and "not found". A signal arrives as a negative code (subprocess's way).
A suite killed at its own timeout is not mapped here: the runner reports it as FAILED with
failure_kind: timeout.
"""

from __future__ import annotations

from enum import StrEnum


class SuiteStatus(StrEnum):
    """What a suite's exit says about the code under test."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"  # the suite did not execute meaningfully: an infrastructure fault


def map_exit_code_to_status(code: int) -> SuiteStatus:
    """Map an exit code (negative: killed by that signal) to PASSED, FAILED or ERROR."""
    if code == 0:
        return SuiteStatus.PASSED
    if code in (1, 2):
        return SuiteStatus.FAILED
    return SuiteStatus.ERROR
