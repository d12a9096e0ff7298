"""The one exit-code mapping every runner shares (SPEC section 4)."""

from __future__ import annotations

import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.self_deploy import SuiteStatus, map_exit_code_to_status


def expected(code: int) -> SuiteStatus:
    if code == 0:
        return SuiteStatus.PASSED
    if code in (1, 2):
        return SuiteStatus.FAILED
    return SuiteStatus.ERROR


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(),
        st.integers(min_value=-70, max_value=300),
        st.integers(min_value=-(2**70), max_value=2**70),
    )
)
def test_every_exit_code_maps_to_exactly_one_status(code: int) -> None:
    assert map_exit_code_to_status(code) is expected(code)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1))
def test_a_process_killed_by_any_signal_did_not_run_meaningfully(signum: int) -> None:
    assert map_exit_code_to_status(-signum) is SuiteStatus.ERROR


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, SuiteStatus.PASSED),
        (1, SuiteStatus.FAILED),  # tests failed
        (2, SuiteStatus.FAILED),  # pytest collection errors, make: a failed target
        (3, SuiteStatus.ERROR),  # pytest internal error
        (4, SuiteStatus.ERROR),  # pytest usage error
        (5, SuiteStatus.ERROR),  # pytest: no tests collected
        (126, SuiteStatus.ERROR),  # not executable
        (127, SuiteStatus.ERROR),  # command not found
        (128, SuiteStatus.ERROR),
        (255, SuiteStatus.ERROR),
        (-int(signal.SIGKILL), SuiteStatus.ERROR),
        (-int(signal.SIGTERM), SuiteStatus.ERROR),
        (-int(signal.SIGSEGV), SuiteStatus.ERROR),
        (-int(signal.SIGINT), SuiteStatus.ERROR),
        (-1, SuiteStatus.ERROR),
        (2**63, SuiteStatus.ERROR),
        (-(2**63), SuiteStatus.ERROR),
    ],
)
def test_named_exit_codes(code: int, status: SuiteStatus) -> None:
    assert map_exit_code_to_status(code) is status


def test_statuses_read_as_their_names() -> None:
    assert [str(s) for s in SuiteStatus] == ["PASSED", "FAILED", "ERROR"]
