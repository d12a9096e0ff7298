"""What the dashboard pages show, read from the store: plain data for the templates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from orchestrator.api.render import markdown_html
from orchestrator.api.state import ApiState
from orchestrator.control import waits_for_person
from orchestrator.documents import judged_commits
from orchestrator.errors import NotFound
from orchestrator.overview import RUNNER_KEYS, queue_report
from orchestrator.pipeline.progress import STAGE_INDEX, stage_progress
from orchestrator.pipeline.stages import STAGE_ORDER, Producer, Stage, TaskState
from orchestrator.redact import redact
from orchestrator.store import Alert, Artifact, Determinization, Event, Job, Repo, Store, Task
from orchestrator.store.base import utcnow
from orchestrator.story import merged_commit

ACTIVE_LIMIT = 500  # active and blocked tasks shown on the board at most
FINAL_LIMIT = 30  # the newest tasks shown in each of the done, failed and cancelled columns
STATE_COLUMNS = (TaskState.BLOCKED, TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


@dataclass(frozen=True)
class Card:
    """A task on the board, with the status of its live job (running, queued, deferred)."""

    task: Task
    job_status: str | None


@dataclass(frozen=True)
class Column:
    """A board column: a stage (active tasks) or a state; `total` may exceed the cards."""

    key: str
    kind: str  # "stage" or "state"
    cards: list[Card]
    total: int


@dataclass(frozen=True)
class Bar:
    """One producer's bar in the verdict chart; coordinates in SVG user units."""

    producer: str
    count: int
    llm: bool
    y: int
    width: float


@dataclass(frozen=True)
class Chart:
    """Verdicts by producer: code and agents apart."""

    bars: list[Bar]
    height: int
    deterministic: int
    by_llm: int
    avoided: int


CHART_LABEL_W = 150
CHART_BAR_W = 230
CHART_ROW_H = 22


def _live_jobs(store: Store) -> dict[str, str]:
    queue = store.queue()
    return {
        item.job.task_id: item.job.status.value
        for item in (*queue.running, *queue.queued, *queue.deferred)
    }


def board(store: Store) -> list[Column]:
    """A column per stage in pipeline order (active tasks), then blocked, done, failed and
    cancelled (the newest first)."""
    live = _live_jobs(store)
    by_stage: dict[str, list[Card]] = {stage: [] for stage in STAGE_ORDER}
    for task in store.list_tasks(state=TaskState.ACTIVE, limit=ACTIVE_LIMIT):
        if task.stage not in by_stage:
            by_stage = _with_column(by_stage, task)
        by_stage[task.stage].append(Card(task, live.get(task.id)))
    columns = [Column(stage, "stage", cards, len(cards)) for stage, cards in by_stage.items()]
    for state in STATE_COLUMNS:
        limit = ACTIVE_LIMIT if state is TaskState.BLOCKED else FINAL_LIMIT
        total = store.count_tasks(state=state)
        tasks = store.list_tasks(state=state, limit=limit, offset=max(0, total - limit))
        cards = [Card(task, live.get(task.id)) for task in reversed(tasks)]
        columns.append(Column(state.value, "state", cards, max(total, len(cards))))
    return columns


def _with_column(by_stage: dict[str, list[Card]], task: Task) -> dict[str, list[Card]]:
    """The columns with one more for a stage of a repo's own pipeline (a check, an approval),
    placed right after the stage before it in that pipeline."""
    order = task.pipeline.order
    before = order[: order.index(task.stage)]
    after = next((s for s in reversed(before) if s in by_stage), None)
    columns: dict[str, list[Card]] = {}
    if after is None:
        columns[task.stage] = []
    for stage, cards in by_stage.items():
        columns[stage] = cards
        if stage == after:
            columns[task.stage] = []
    return columns


def _is_llm(producer: str) -> bool:
    try:
        return Producer(producer).is_llm
    except ValueError:
        return False


def verdict_chart(figures: Determinization) -> Chart:
    """Bars for the verdicts of each producer, in pipeline order."""
    order = {producer.value: index for index, producer in enumerate(Producer)}
    counts = sorted(
        figures.verdicts_by_producer.items(), key=lambda item: (order.get(item[0], 99), item[0])
    )
    top = max((count for _, count in counts), default=0) or 1
    bars = [
        Bar(producer, count, _is_llm(producer), index * CHART_ROW_H, CHART_BAR_W * count / top)
        for index, (producer, count) in enumerate(counts)
    ]
    return Chart(
        bars,
        max(1, len(bars)) * CHART_ROW_H,
        figures.deterministic,
        figures.by_llm,
        figures.llm_calls_avoided,
    )


def board_context(state: ApiState) -> dict[str, Any]:
    """Everything the board fragment shows."""
    store = state.store
    counts = store.counts()
    return {
        "columns": board(store),
        "repos": [repo.name for repo in store.list_repos()],
        "by_state": counts.by_state,
        "chart": verdict_chart(store.determinization()),
        "chart_label_w": CHART_LABEL_W,
        "chart_bar_w": CHART_BAR_W,
        "chart_row_h": CHART_ROW_H,
    }


# --- the task page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One verdict in a task's timeline, with the job that produced it."""

    event: Event
    job: Job | None
    outcome: str  # created, passed, rollback, blocked, failed
    duration_s: float | None
    llm: bool


@dataclass(frozen=True)
class StagePill:
    """A stage in the task's progress strip."""

    stage: str
    status: str  # passed, current, blocked, failed, pending, skipped


@dataclass(frozen=True)
class ArtifactView:
    """The latest version of an artifact, rendered, and the rounds it was written in."""

    latest: Artifact
    html: Markup
    rounds: list[int]


def job_seconds(job: Job | None) -> float | None:
    """How long a job ran: its measured duration, its start to end, or its start to now."""
    if job is None:
        return None
    if job.duration_s is not None:
        return job.duration_s
    if job.started_at is None:
        return None
    end = job.finished_at or utcnow()
    return max(0.0, (end - job.started_at).total_seconds())


def outcome(event: Event) -> str:
    """What a stage move meant: created, passed, rollback (back to development), blocked,
    failed."""
    if event.from_stage is None:
        return "created"
    if event.to_stage in ("blocked", "failed"):
        return event.to_stage
    here = STAGE_INDEX.get(event.from_stage)
    if here is None:  # a stage of a repo's own: a failure of it returns to development
        own_failure = event.verdict in ("FAIL", "REJECTED")
        return "rollback" if event.to_stage == Stage.DEVELOPMENT and own_failure else "passed"
    before = STAGE_INDEX.get(event.to_stage)
    if before is not None and before < here:
        return "rollback"
    return "passed"


def timeline(events: list[Event], jobs: list[Job]) -> list[Step]:
    """The task's stage moves, oldest first, each with its job's duration and producer."""
    by_id = {job.id: job for job in jobs}
    steps = []
    for event in events:
        job = by_id.get(event.job_id) if event.job_id is not None else None
        steps.append(
            Step(event, job, outcome(event), job_seconds(job), _is_llm(event.producer.value))
        )
    return steps


def progress(task: Task, skipped: Iterable[Stage]) -> list[StagePill]:
    """Every stage of the task's pipeline and where the task stands in it
    (pipeline/progress.py)."""
    marks = stage_progress(task.stage, task.state, skipped, task.pipeline)
    return [StagePill(mark.stage, mark.status.value) for mark in marks]


def artifacts(state: ApiState, versions: list[Artifact]) -> list[ArtifactView]:
    """The latest version of each artifact, in the order they were first written (the
    pipeline's, a repo's own stages included), rendered from Markdown (secrets masked)."""
    latest: dict[str, Artifact] = {}
    rounds: dict[str, list[int]] = {}
    for artifact in versions:  # oldest first: the last one of a name is its latest
        latest[artifact.name] = artifact
        rounds.setdefault(artifact.name, []).append(artifact.round)
    return [
        ArtifactView(
            artifact,
            # Safe to mark: markdown_html escapes any HTML the artifact holds.
            Markup(markdown_html(redact(artifact.text, state.secrets))),
            sorted(set(rounds[name])),
        )
        for name, artifact in latest.items()
    ]


def task_context(state: ApiState, task_id: str) -> dict[str, Any]:
    """Everything the task fragment shows; NotFound for an unknown task."""
    store = state.store
    task = store.get_task(task_id)
    jobs = store.task_jobs(task_id)
    try:
        repo: Repo | None = store.get_repo(task.repo)
    except NotFound:
        repo = None
    skipped: Iterable[Stage] = repo.skip_stages if repo else ()
    steps = timeline(store.events(task_id), jobs)
    longest = max((s.duration_s or 0.0 for s in steps), default=0.0) or 1.0
    live = [job for job in jobs if job.finished_at is None]
    versions = store.artifact_versions(task_id)
    return {
        "task": task,
        "pills": progress(task, skipped),
        "steps": steps,
        "longest": longest,
        "live": live,
        "jobs": jobs,
        "job_seconds": job_seconds,
        "artifacts": artifacts(state, versions),
        "judged": judged_commits(versions),
        "merged": merged_commit(versions),
        "mask": lambda text: redact(text or "", state.secrets),
        # The repo read above serves here too (no second read on each live refresh).
        "waits_for": "person" if repo and waits_for_person(task, repo, state.settings) else None,
    }


# --- the queue and the alerts ---------------------------------------------------------------


def queue_context(state: ApiState) -> dict[str, Any]:
    """Running, queued and deferred jobs, the serial gates and the four runner blocks (the
    document of GET /queue, computed afresh: a live page must not show a cached one)."""
    document = queue_report(state.store, state.settings)
    runners = [(producer.value, key, document[key]) for producer, key in RUNNER_KEYS.items()]
    return {"queue": document, "runners": runners}


def alerts_context(state: ApiState) -> dict[str, Any]:
    """Every alert, newest first, open ones counted."""
    alerts: list[Alert] = state.store.list_alerts()
    return {
        "alerts": alerts,
        "open": sum(1 for alert in alerts if alert.acknowledged_at is None),
        "needs_token": state.settings.token is not None,
    }


def when(value: datetime | str | None) -> str:
    """A timestamp as people read it (UTC, to the second)."""
    if not value:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 0.7 s, 12 s, 3 m 05 s, 1 h 02 m."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"
