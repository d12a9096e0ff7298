"""The reserved-agent table: deterministic runners that claim a stage before `_spawn` does.

A runner claims its stage when its kill-switch is on, the repo is in its repo-scope CSV
(`*` = all), and the repo has the command it needs. Otherwise the stage falls back to its LLM
agent (tester, deployer), or, for the stages that have none, blocks for a person.

A runner's verdict goes to the stage's unchanged gate, exactly like an LLM artifact. A tool
error defers the job; once the runner's infra-retry budget is spent, it writes a FAILED
artifact with `failure_kind: infra`, the gate handles it as FAILED, and an alert is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from orchestrator.errors import NotFound
from orchestrator.jobs.context import JobContext, JobEnd, commit_verdict
from orchestrator.jobs.policy import Next, after_tool_error, backoff_s
from orchestrator.pipeline.stages import (
    RUNNER_STAGES,
    Producer,
    Stage,
    StageKind,
    StageSpec,
    artifact_for,
    runner_key,
)
from orchestrator.pipeline.verdicts import Judged
from orchestrator.runners.base import Runner, RunnerOutcome, RunnerRequest, run_guarded
from orchestrator.runners.check_runner import CheckRunner
from orchestrator.runners.deploy_finalizer import DeployFinalizer
from orchestrator.runners.monitor import PostDeployMonitor
from orchestrator.runners.staging_runner import StagingRunner
from orchestrator.runners.test_runner import TestRunner
from orchestrator.settings import Settings
from orchestrator.store import Job, JobMetrics, Repo, Task
from orchestrator.workspace import layout
from orchestrator.workspace.merging import Ahead, branch_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReservedAgent:
    """A deterministic runner: the stage table's producer and the code that produces it."""

    producer: Producer
    runner: Runner

    @property
    def stage(self) -> Stage:
        """The built-in stage it claims (the stage table's row that names it); the check-runner
        claims every check stage of a repo's own pipeline instead."""
        return RUNNER_STAGES[self.producer]

    @property
    def key(self) -> str:
        """Its settings prefix: <key>_enabled, <key>_repos, <key>_infra_retries."""
        return runner_key(self.producer)

    def claims(self, repo: Repo, settings: Settings) -> bool:
        """True when this runner, not an LLM, produces the stage's artifact for `repo`. Each
        runner answers every repo it covers: without a staging command or a health URL it
        says SKIPPED, and the test command has a default (`python -m pytest <target>`)."""
        return settings.runner(self.key).covers(repo.name)

    def budget(self, settings: Settings) -> int:
        """How many tool errors in a row are deferred before the stage fails as infra."""
        return settings.runner(self.key).infra_retries


# The code behind each runner of the stage table (a test checks that they match).
RESERVED_AGENTS: Mapping[Stage, ReservedAgent] = MappingProxyType(
    {
        agent.stage: agent
        for agent in (
            ReservedAgent(Producer.TEST_RUNNER, TestRunner()),
            ReservedAgent(Producer.STAGING_RUNNER, StagingRunner()),
            ReservedAgent(Producer.DEPLOY_FINALIZER, DeployFinalizer()),
            ReservedAgent(Producer.POST_DEPLOY_MONITOR, PostDeployMonitor()),
        )
    }
)


# A repo's own check stages (orch.toml), whatever their names.
CHECK_AGENT = ReservedAgent(Producer.CHECK_RUNNER, CheckRunner())


def claiming_runner(spec: StageSpec, repo: Repo, settings: Settings) -> ReservedAgent | None:
    """The runner that claims the stage of `spec` for `repo`, if any."""
    if spec.kind is StageKind.CHECK:
        return CHECK_AGENT
    agent = RESERVED_AGENTS.get(Stage(spec.stage)) if spec.kind is StageKind.BUILT_IN else None
    return agent if agent is not None and agent.claims(repo, settings) else None


def run_reserved(ctx: JobContext, job: Job, task: Task, repo: Repo, agent: ReservedAgent) -> JobEnd:
    """Run a reserved runner for the job: verdict to the gate, or defer, or FAILED as infra."""
    name = task.pipeline.spec(job.stage).artifact
    path = layout.artifact_path(ctx.settings.home, task.id, name)
    log_path = ctx.log_path(job, agent.producer.value)
    request = RunnerRequest(
        task=task,
        repo=repo,
        job=job,
        settings=ctx.settings,
        artifact_path=path,
        log_path=log_path,
        cancel=ctx.cancel,
        on_start=ctx.on_start(job),
        marker=ctx.marker(job),
        secrets=ctx.secrets,
        tested=_tested(ctx, job) if job.stage in (Stage.DEPLOY_STAGING, Stage.DEPLOY) else None,
        ahead=_ahead(ctx, task, repo) if job.stage is Stage.TESTING else (),
        stage_attempt=_stage_attempt(ctx, job) if job.stage is Stage.DEPLOY else 1,
    )
    step = ctx.take_over(job, repo) if ctx.take_over else None
    if step is None:
        outcome = run_guarded(agent.runner, request)
    else:
        ended = step(ctx, job, task, repo, request)
        if isinstance(ended, JobEnd):
            return ended
        outcome = ended  # an ordinary verdict or deferral
    if outcome.cancelled:
        return JobEnd.CANCELLED
    metrics = _metrics(agent, outcome, str(log_path))
    if outcome.artifact is not None:
        _write(path, outcome.artifact)
        return commit_verdict(ctx, job, task, repo, agent.producer, name, outcome.artifact, metrics)

    settings = ctx.settings
    if after_tool_error(job.infra_failures, agent.budget(settings)) is Next.RETRY:
        wait = backoff_s(
            job.infra_failures + 1, settings.defer_backoff_s, settings.defer_backoff_max_s
        )
        ctx.store.defer_job(job, wait, metrics, counted="infra")
        log.warning(
            "task %s: %s could not run (%s); deferred %.1fs",
            task.id,
            agent.producer,
            outcome.reason,
            wait,
        )
        return JobEnd.DEFERRED

    attempts = job.infra_failures + 1
    text = agent.runner.infra_failure(request, outcome.reason, attempts)
    _write(path, text)
    alert = (
        f"{agent.producer} could not run for task {task.id} in {attempts} attempts "
        f"(infra-retry budget spent); the stage fails as infra: {outcome.reason}"
    )
    return commit_verdict(
        ctx, job, task, repo, agent.producer, name, text, metrics, extra_alert=("infra", alert)
    )


def _tested(ctx: JobContext, job: Job) -> Judged | None:
    """The commits this round's test report judged: the deploy ships exactly that."""
    try:
        report = ctx.store.get_artifact(job.task_id, artifact_for(Stage.TESTING), job.round)
    except NotFound:
        return None
    return Judged.read(report.text)


def _ahead(ctx: JobContext, task: Task, repo: Repo) -> tuple[Ahead, ...]:
    """The tasks that will merge before this one, in order: what each was tested as, or
    its branch while it is still in testing."""
    return tuple(
        Ahead(entry.task_id, entry.tested.tested, True)
        if entry.tested is not None
        else Ahead(entry.task_id, branch_ref(repo, entry.branch), False)
        for entry in ctx.store.ahead_of(task)
    )


def _stage_attempt(ctx: JobContext, job: Job) -> int:
    """How many times this stage was started in this round: every claim of every job of it
    (a dead worker's job is abandoned and replaced by a fresh one)."""
    same = [
        j for j in ctx.store.task_jobs(job.task_id) if (j.stage, j.round) == (job.stage, job.round)
    ]
    return max(1, sum(j.attempt for j in same))


def _write(path: Path, text: str) -> None:
    # The file is for agents of later rounds; the database copy is the source of truth.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _metrics(agent: ReservedAgent, outcome: RunnerOutcome, log_path: str) -> JobMetrics:
    return JobMetrics(
        producer=agent.producer.value,
        outcome="verdict" if outcome.is_verdict else "tool_error",
        error_kind=None if outcome.is_verdict else "tool_error",
        error_message=outcome.reason or None,
        exit_code=outcome.exit_code,
        log_path=log_path,
        backend="deterministic",
        duration_s=outcome.duration_s,
    )
