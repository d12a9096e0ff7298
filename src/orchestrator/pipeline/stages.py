"""Stages, task states, producers and `STAGE_TRANSITIONS`: the pipeline table as data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import cast


class Stage(StrEnum):
    """A step a task passes through; each stage runs one job that leaves one artifact."""

    ANALYSIS = "analysis"
    DESIGN = "design"
    DEVELOPMENT = "development"
    REVIEW = "review"
    TESTING = "testing"
    DEPLOY_STAGING = "deploy-staging"
    DEPLOY = "deploy"
    POST_DEPLOY = "post-deploy"


class TaskState(StrEnum):
    """Where a task stands. Blocked, done, failed and cancelled are states, never stages."""

    ACTIVE = "active"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for the states a task never leaves."""
        return self in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


class Producer(StrEnum):
    """Who wrote an artifact or caused an event: the agent names of the stage table, intake,
    and a person (whose retry of a failed task is an event)."""

    INTAKE = "intake"
    ANALYST = "analyst"
    ARCHITECT = "architect"
    DEVELOPER = "developer"
    REVIEWER = "reviewer"
    TESTER = "tester"
    DEPLOYER = "deployer"
    TEST_RUNNER = "test-runner"
    STAGING_RUNNER = "staging-runner"
    DEPLOY_FINALIZER = "deploy-finalizer"
    POST_DEPLOY_MONITOR = "post-deploy-monitor"
    CHECK_RUNNER = "check-runner"  # a repo's own check stage (orch.toml)
    PERSON = "person"  # a person's move: a retry, an approval, a rejection

    @property
    def is_llm(self) -> bool:
        """True for the roles an LLM agent plays."""
        return self in LLM_ROLES


class StageKind(StrEnum):
    """What produces a stage: the built-in table's producers, or a repo's own step."""

    BUILT_IN = "built-in"  # a row of STAGE_TRANSITIONS
    CHECK = "check"  # a repo's command, run by code in the worktree (orch.toml)
    APPROVAL = "approval"  # a person's verdict; no job runs while it waits (orch.toml)


class Outcome(StrEnum):
    """Where a gate verdict sends a task that is not moving to another stage."""

    NEXT = "next"  # on to `StageSpec.on_pass`
    DONE = "done"
    BLOCKED = "blocked"
    FAILED = "failed"
    ROLLBACK = "development"  # back to development, in a new round


@dataclass(frozen=True)
class StageSpec:
    """One row of the stage table (the README's "The pipeline"): everything about a stage.
    Gates, prompt verdict lines, runner lists, fallback sets, the serial gate and the docs'
    tables are derived from these rows; adding a built-in stage is one row plus its prompt or
    runner."""

    stage: str  # a Stage for a built-in row; a repo's own name for a check or an approval
    llm_role: Producer | None  # the LLM agent for the stage; None when only code may produce it
    runner: Producer | None  # the deterministic runner that claims the stage, if any
    artifact: str
    verdict_keys: tuple[str, ...]
    on_pass: str | None  # None: passing this stage finishes the task
    on_fail: Outcome
    optional: bool  # a repo may switch it off
    pass_lines: tuple[str, ...]  # the verdict lines of a passing artifact
    fail_lines: tuple[str, ...]  # ... and of a failing one
    pass_values: frozenset[str]  # every value of the first key its gate passes
    fail_values: frozenset[str]  # ... and fails
    serial: bool = False  # under the repo's serial gate (one task at a time per repo)
    kind: StageKind = StageKind.BUILT_IN
    command: tuple[str, ...] = ()  # a check's argv
    timeout_s: float | None = None  # a check's time limit

    @property
    def producers(self) -> tuple[Producer, ...]:
        """Who may write the stage's artifact by code or by LLM, runner first."""
        return tuple(p for p in (self.runner, self.llm_role) if p is not None)


def _row(
    stage: Stage,
    by: tuple[Producer | None, Producer | None],
    artifact: str,
    key: str,
    words: tuple[str, str],
    goes: tuple[Stage | None, Outcome],
    *,
    optional: bool,
    serial: bool = False,
    also_pass: tuple[str, ...] = (),
    also_fail: tuple[str, ...] = (),
    lines: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> tuple[Stage, StageSpec]:
    # One `key: WORD` line each way, unless the row gives its lines (a test report's three).
    passing, failing = lines or ((f"{key}: {words[0]}",), (f"{key}: {words[1]}",))
    keys = tuple(line.split(":", 1)[0] for line in passing)
    spec = StageSpec(
        stage, by[0], by[1], artifact, keys, goes[0], goes[1], optional, passing, failing,
        frozenset({words[0], *also_pass}), frozenset({words[1], *also_fail}), serial,
    )  # fmt: skip
    return stage, spec


S = Stage
P = Producer
O = Outcome  # noqa: E741 (a table's column)

# by = (LLM role, runner); goes = (on pass, on fail). A runner's SKIPPED is written by code
# only (nothing to stage, no health URL); a deploy's RETEST sends the task back to testing.
STAGE_TRANSITIONS: Mapping[Stage, StageSpec] = MappingProxyType(
    dict(
        [
            _row(S.ANALYSIS, (P.ANALYST, None), "02-analysis.md", "analysis_status",
                 ("READY", "BLOCKED"), (S.DESIGN, O.BLOCKED), optional=False),
            _row(S.DESIGN, (P.ARCHITECT, None), "05-design.md", "design_status",
                 ("READY", "BLOCKED"), (S.DEVELOPMENT, O.BLOCKED), optional=True),
            _row(S.DEVELOPMENT, (P.DEVELOPER, None), "10-development.md", "dev_status",
                 ("DONE", "BLOCKED"), (S.REVIEW, O.BLOCKED), optional=False),
            _row(S.REVIEW, (P.REVIEWER, None), "11-code-review.md", "review_verdict",
                 ("APPROVED", "CHANGES_REQUESTED"), (S.TESTING, O.ROLLBACK), optional=True),
            _row(S.TESTING, (P.TESTER, P.TEST_RUNNER), "13-test-report.md", "result",
                 ("PASS", "FAIL"), (S.DEPLOY_STAGING, O.ROLLBACK), optional=False,
                 lines=(("result: PASS", "status: PASS", "tests_failed: 0"),
                        ("result: FAIL", "status: FAIL"))),
            _row(S.DEPLOY_STAGING, (P.DEPLOYER, P.STAGING_RUNNER), "15-staging-log.md",
                 "staging_status", ("PASSED", "FAILED"), (S.DEPLOY, O.ROLLBACK),
                 optional=True, serial=True, also_pass=("SKIPPED",)),
            _row(S.DEPLOY, (None, P.DEPLOY_FINALIZER), "16-deploy-log.md", "deploy_status",
                 ("DEPLOYED", "FAILED"), (S.POST_DEPLOY, O.BLOCKED), optional=True,
                 serial=True, also_fail=("RETEST",)),
            _row(S.POST_DEPLOY, (None, P.POST_DEPLOY_MONITOR), "17-monitor-report.md",
                 "monitor_status", ("HEALTHY", "UNHEALTHY"), (None, O.FAILED), optional=True,
                 serial=True, also_pass=("SKIPPED",)),
        ]
    )
)  # fmt: skip

StageTable = Mapping[Stage, StageSpec]


def _named(spec: StageSpec) -> Stage:
    # A row of a built-in table names its stage by its enum member (the repo's own stages
    # of orch.toml, named by strings, never reach these lists).
    return cast(Stage, spec.stage)


def runner_stages(table: StageTable) -> Mapping[Producer, Stage]:
    """Each deterministic runner and the stage it claims, in pipeline order."""
    return MappingProxyType({s.runner: _named(s) for s in table.values() if s.runner})


def llm_stages(table: StageTable) -> Mapping[Producer, Stage]:
    """Each LLM role and the stage it produces, in pipeline order."""
    return MappingProxyType({s.llm_role: _named(s) for s in table.values() if s.llm_role})


def fallback_roles(table: StageTable) -> tuple[Producer, ...]:
    """The LLM roles that stand in for a runner that is off or out of scope."""
    return tuple(s.llm_role for s in table.values() if s.llm_role and s.runner)


def runner_key(runner: Producer) -> str:
    """A runner's settings prefix and its /queue key: `test_runner`, `post_deploy_monitor`."""
    return runner.value.replace("-", "_")


STAGE_ORDER: tuple[Stage, ...] = tuple(STAGE_TRANSITIONS)
OPTIONAL_STAGES = frozenset(spec.stage for spec in STAGE_TRANSITIONS.values() if spec.optional)
# The serial gate covers the stages that touch shared targets (staging, the default branch,
# the running service): per repo, one task at a time from deploy-staging to the end.
SERIAL_STAGES = frozenset(spec.stage for spec in STAGE_TRANSITIONS.values() if spec.serial)
RUNNER_STAGES = runner_stages(STAGE_TRANSITIONS)
LLM_STAGES = llm_stages(STAGE_TRANSITIONS)
FALLBACK_ROLES = fallback_roles(STAGE_TRANSITIONS)
LLM_ROLES = frozenset(LLM_STAGES)

TASK_ARTIFACT = "01-task.md"


def as_stage(name: str) -> str:
    """A stage name as read from a row: the Stage member for a built-in stage (so that `is`
    comparisons hold), the name itself for a stage of a repo's own pipeline."""
    return Stage(name) if name in _BUILT_IN_NAMES else name


_BUILT_IN_NAMES = frozenset(s.value for s in Stage)


def artifact_for(stage: Stage) -> str:
    """The name of the artifact a stage's job must leave."""
    return STAGE_TRANSITIONS[stage].artifact


def parse_stage_list(csv: str) -> frozenset[Stage]:
    """Parse a comma-separated list of stages a repo switches off; ValueError names the culprit."""
    stages: set[Stage] = set()
    for raw in csv.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        try:
            stage = Stage(name)
        except ValueError:
            known = ", ".join(STAGE_ORDER)
            raise ValueError(f"unknown stage {raw.strip()!r} (stages: {known})") from None
        if stage not in OPTIONAL_STAGES:
            optional = ", ".join(s for s in STAGE_ORDER if s in OPTIONAL_STAGES)
            raise ValueError(f"stage {stage} cannot be switched off (optional: {optional})")
        stages.add(stage)
    return frozenset(stages)


def format_stage_list(stages: frozenset[Stage]) -> str:
    """The canonical CSV of a set of stages, in pipeline order."""
    return ",".join(s.value for s in STAGE_ORDER if s in stages)
