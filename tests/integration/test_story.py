"""A task's story (story.py) for a task that is still moving: what runs, or why it waits and
when it retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.intake import submit_task
from orchestrator.registry import RepoOptions, register_repo
from orchestrator.store import JobMetrics, Store
from orchestrator.story import task_story


def test_a_deferred_task_says_why_it_waits_and_when_it_retries(
    store: Store, make_repo: Callable[..., Path], orch_home: Path
) -> None:
    register_repo(store, "app", make_repo("app"), RepoOptions())
    task = submit_task(store, orch_home, "app", "Wait", "")
    [job] = store.claim_jobs("w-1", "here", 1, 30)
    story = dict(task_story(store, task, store.events(task.id), [job], store.now()))
    assert story["now"] == "analysis running for 0.0s" or story["now"].startswith(
        "analysis running"
    )
    metrics = JobMetrics(
        producer="analyst",
        outcome="deferred",
        error_kind="rate_limited",
        error_message="429 from the model",
    )
    store.defer_job(job, 30.0, metrics, counted="agent")
    jobs = store.task_jobs(task.id)
    story = dict(task_story(store, task, store.events(task.id), jobs, store.now()))
    assert story["now"].startswith("analysis waits (rate_limited: 429 from the model); retries in")
    assert story["worktree"] == task.worktree and "merged" not in story
