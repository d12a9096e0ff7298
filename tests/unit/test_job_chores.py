"""The housekeeping after a job's verdict (`JobContext.later`): in the scheduler's chores
executor, off the path of the slot's next job, or at once without one; never fatal."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.proc import CancelToken
from orchestrator.settings import load_settings


def context(tmp_path: Path, chores: ThreadPoolExecutor | None) -> JobContext:
    store: Any = None  # a chore needs no store
    return JobContext(store, load_settings(home=tmp_path), CancelToken(), "w-1", chores=chores)


def test_without_chores_a_chore_runs_at_once_in_the_jobs_thread(tmp_path: Path) -> None:
    ran: list[str] = []
    context(tmp_path, None).later(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]


def test_with_chores_a_chore_runs_in_their_thread(tmp_path: Path) -> None:
    ran: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="chores") as chores:
        context(tmp_path, chores).later(lambda: ran.append(threading.current_thread().name))
    assert len(ran) == 1 and ran[0].startswith("chores")


@pytest.mark.parametrize("in_chores", [False, True])
def test_a_failing_chore_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, in_chores: bool
) -> None:
    def chore() -> None:
        raise OSError("disk gone")

    with caplog.at_level(logging.ERROR), ThreadPoolExecutor(1) as chores:
        context(tmp_path, chores if in_chores else None).later(chore)
    assert "housekeeping after a job failed" in caplog.text and "disk gone" in caplog.text
