"""What people do to tasks: cancel, resume, retry, and approve or reject a stage that waits
for a person. Shared by the CLI and the API."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import Conflict, InputError
from orchestrator.jobs.context import rules
from orchestrator.jobs.reserved import claiming_runner
from orchestrator.pipeline.names import check_task_id
from orchestrator.pipeline.stages import StageKind, TaskState
from orchestrator.pipeline.transitions import judge
from orchestrator.proc import host_identity, terminate_group
from orchestrator.settings import Settings
from orchestrator.store import Repo, Store, Task
from orchestrator.workspace import checkout


def retire_worktree(store: Store, home: Path, task: Task) -> None:
    """Remove a finished task's worktree on this machine (its branch stays); never fatal."""
    checkout.retire_quietly(home, store.get_repo(task.repo), task)


def cancel_task(store: Store, settings: Settings, task_id: str) -> Task:
    """Cancel a task: its running job's processes are killed and its worktree removed."""
    task, job = store.cancel_task(check_task_id(task_id))
    if job is not None and job.pgid is not None and job.host == host_identity():
        # The worker would notice at its next heartbeat; kill now so the agent stops at once.
        # (terminate_group checks the recorded start time: a finished attempt's pid that was
        # reused since is never killed.)
        marker = job.marker or f"{job.worker_id}.{job.id}.{job.attempt}"
        terminate_group(job.pgid, job.proc_started_at, marker, settings.kill_grace_s)
    retire_worktree(store, settings.home, task)
    return task


def resume_task(store: Store, settings: Settings, task_id: str) -> Task:
    """Send a blocked task back into its stage; refused where only a person's verdict can move
    it (resuming would block it again at once)."""
    task = store.get_task(check_task_id(task_id))
    if waiting_for(store, settings, task) == "person":
        raise Conflict(
            f"task {task.id} waits in {task.stage} for a person's verdict, which no runner or "
            f"agent can give: orch task approve {task.id}, or orch task reject {task.id} --reason"
        )
    return store.resume_task(task.id)


def retry_task(store: Store, settings: Settings, task_id: str) -> Task:
    """Give a failed task a new development round with a fresh budget of returns, in its
    worktree, made again from the branch when `orch gc` removed it (its setup runs again)."""
    task = store.get_task(check_task_id(task_id))
    if task.state is not TaskState.FAILED:
        raise Conflict(f"task {task.id} is {task.state}, not failed: nothing to retry")
    remade = checkout.restore(store.get_repo(task.repo), task)
    return store.retry_task(task.id, setup_again=remade)


def waits_for_person(task: Task, repo: Repo, settings: Settings) -> bool:
    """True when the task is blocked in a stage that nothing but a person can produce (its
    runner is off or out of scope, and it has no LLM fallback): resuming it would only block
    it again, so its verdict is a person's (`orch task approve` or `reject`)."""
    if task.state is not TaskState.BLOCKED:
        return False
    spec = task.pipeline.spec(task.stage)
    if spec.kind is StageKind.APPROVAL:
        return True  # the repo's pipeline asks a person here
    return spec.llm_role is None and claiming_runner(spec, repo, settings) is None


def waiting_for(store: Store, settings: Settings, task: Task) -> str | None:
    """ "person" when the task waits for a person's verdict (`waits_for_person`), else None:
    the `waits_for` of a task's document."""
    if task.state is not TaskState.BLOCKED:
        return None
    return "person" if waits_for_person(task, store.get_repo(task.repo), settings) else None


def approve_task(store: Store, settings: Settings, task_id: str, note: str = "") -> Task:
    """A person's passing verdict on the stage the task waits in; it moves on."""
    return _person_verdict(store, settings, task_id, True, note or "Approved by a person.")


def reject_task(store: Store, settings: Settings, task_id: str, reason: str) -> Task:
    """A person's failing verdict, with the reason, on the stage the task waits in; the task
    goes where the stage's failures go (the stage table)."""
    if not reason.strip():
        raise InputError("a rejection needs a reason")
    return _person_verdict(store, settings, task_id, False, reason)


def _person_verdict(
    store: Store, settings: Settings, task_id: str, passed: bool, words: str
) -> Task:
    task = store.get_task(check_task_id(task_id))
    repo = store.get_repo(task.repo)
    if not waits_for_person(task, repo, settings):
        why = (
            f"is {task.state}"
            if task.state is not TaskState.BLOCKED
            else f"is blocked in {task.stage}, which a runner or an agent produces (fix the cause, "
            "then orch task resume)"
        )
        raise Conflict(f"task {task.id} {why}: no stage waits for a person's verdict")
    spec = task.pipeline.spec(task.stage)
    lines = spec.pass_lines if passed else spec.fail_lines
    # The person's words are quoted, so that no line of theirs is ever read as a verdict key.
    said = "\n".join(f"> {line}".rstrip() for line in words.strip().splitlines())
    text = f"# {spec.artifact} by a person\n\n" + "\n".join(lines) + "\nproducer: person\n\n"
    text += said + "\n"
    judged = judge(
        task.stage, text, task.round, rules(settings), repo.skip_stages,
        budget_round=task.budget_round, pipeline=task.pipeline,
    )  # fmt: skip
    return store.record_person_verdict(task, spec.artifact, text, judged)
