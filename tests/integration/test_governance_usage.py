"""A7 (the failure summary), usage accounting and budgets, with real agent processes."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text

from orchestrator.intake import submit_task
from orchestrator.overview import status_report
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings
from orchestrator.store import RepoSpec, Store, Task
from orchestrator.store.schema import agent_calls
from tests.conftest import AGENT_STAGES_ONLY_SKIP, Run
from tests.helpers import fake_agent_settings


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "test_runner_enabled": False,
        "defer_backoff_s": 0.05,
        "defer_backoff_max_s": 0.1,
        **overrides,
    }
    return fake_agent_settings(db_url, home, **values)


def run_one(store: Store, home: Path, settings: Settings) -> Task:
    task = submit_task(store, home, "app", "Rename x", "")
    Worker(store, settings, drain=True).run()
    return store.get_task(task.id)


def calls(store: Store, task_id: str) -> list[tuple[str, str, str, int]]:
    query = (
        select(
            agent_calls.c.call_site,
            agent_calls.c.role,
            agent_calls.c.error_kind,
            agent_calls.c.round,
        )
        .where(agent_calls.c.task_id == task_id)
        .order_by(agent_calls.c.id)
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


# --- A7: the failure summary -------------------------------------------------------------------


def test_failure_summary_off_the_developer_gets_the_report_alone(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    task = run_one(store, orch_home, settings_for(db_url, orch_home))
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert "FAKE-REVIEW-NOTE" in prompt and "FAKE-SUMMARY-NOTE" not in prompt
    assert "summarizer" not in [role for _, role, _, _ in calls(store, task.id)]


def test_failure_summary_on_goes_above_the_whole_report(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    settings = settings_for(db_url, orch_home, failure_summary_enabled=True)
    task = run_one(store, orch_home, settings)
    assert task.state is TaskState.DONE
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert prompt.index("FAKE-SUMMARY-NOTE") < prompt.index("FAKE-REVIEW-NOTE")
    assert ("A7", "summarizer", "ok", 2) in calls(store, task.id)
    summarizer = (orch_home / "tasks" / task.id / "prompt-summarizer-r2.txt").read_text()
    assert "FAKE-REVIEW-NOTE" in summarizer  # it read the report it summarises


def test_a_failing_summary_leaves_the_pipeline_unchanged(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    monkeypatch.setenv("FAKE_AGENT_SUMMARY_FAILS", "1")
    settings = settings_for(db_url, orch_home, failure_summary_enabled=True)
    task = run_one(store, orch_home, settings)
    assert (task.state, task.round) == (TaskState.DONE, 2)
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert "FAKE-REVIEW-NOTE" in prompt and "FAKE-SUMMARY-NOTE" not in prompt
    assert ("A7", "summarizer", "agent_error", 2) in calls(store, task.id)
    assert [e.to_stage for e in store.events(task.id)] == [
        "analysis",
        "design",
        "development",
        "review",
        "development",
        "review",
        "testing",
        "done",
    ]


# --- accounting and budgets (the fake claude reports tokens and cost) -----------------------


def test_every_agent_call_is_accounted_with_tokens_and_cost(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    orch: Callable[..., Run],
) -> None:
    task = run_one(store, orch_home, settings_for(db_url, orch_home, agent_backend="claude"))
    assert task.state is TaskState.DONE
    assert [site for site, *_ in calls(store, task.id)] == ["A1", "A2", "A3", "A4", "A5"]
    assert store.task_cost(task.id) == pytest.approx(5 * 0.0421)
    figures = status_report(store)["determinization"]
    assert (figures["agent_calls"], figures["tokens_in"], figures["tokens_out"]) == (
        5,
        5 * 1500,
        5 * 320,
    )
    assert figures["by_stage"]["review"]["agent_calls"] == 1
    assert figures["by_stage"]["review"]["cost_usd"] == pytest.approx(0.0421)
    # The LLM tester ran, so the tokens a runner saves can be estimated (none avoided here).
    assert figures["tokens_avoided_estimate"] == 0
    shown = orch("status")
    assert "agent calls" in shown.out and "$0.2105" in shown.out


def test_tokens_avoided_are_unknown_without_llm_tester_calls(
    store: Store, db_url: str, orch_home: Path
) -> None:
    assert status_report(store)["determinization"]["tokens_avoided_estimate"] == "unknown"


def test_a_task_over_its_budget_is_blocked_before_the_next_call(
    fake_bin: Path, agent_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    settings = settings_for(db_url, orch_home, agent_backend="claude", task_budget_usd=0.05)
    task = run_one(store, orch_home, settings)
    assert (task.state, task.stage) == (TaskState.BLOCKED, Stage.DEVELOPMENT)
    assert "ORCH_TASK_BUDGET_USD" in (task.reason or "")
    assert [site for site, *_ in calls(store, task.id)] == ["A1", "A2"]  # no third call
    assert [a.kind for a in store.list_alerts(task_id=task.id)] == ["budget"]


def test_the_daily_budget_blocks_every_task_once_spent(
    fake_bin: Path, agent_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    settings = settings_for(db_url, orch_home, agent_backend="claude", daily_budget_usd=0.03)
    first = run_one(store, orch_home, settings)
    assert first.stage is Stage.DESIGN and "ORCH_DAILY_BUDGET_USD" in (first.reason or "")
    second = run_one(store, orch_home, settings)
    assert (second.state, second.stage) == (TaskState.BLOCKED, Stage.ANALYSIS)
    assert calls(store, second.id) == []


# --- A7 at most once per round, never able to fail the job, and the budget after it -----------


def stand_in(folder: Path, before: str) -> str:
    """An agent command: a real executable that runs `before` (which may end the call), then
    hands over to the fake agent; `role`, `artifact`, `folder` and `round_` are defined."""
    script = folder / "stand-in"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "role, artifact = os.environ['ORCH_ROLE'], os.environ['ORCH_ARTIFACT_PATH']\n"
        "folder, round_ = os.environ['ORCH_ARTIFACT_DIR'], os.environ['ORCH_ROUND']\n"
        f"{before}\n"
        "os.execvp('fake-agent', ['fake-agent', *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    return f"{script} {{role}}"


def test_the_failure_summary_is_made_once_per_round_and_reused_by_a_developer_retry(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    # The developer's first attempt at round 2 crashes; it keeps the prompt it was given.
    crash_once = (
        "first = os.path.join(folder, 'prompt-developer-r2-first.txt')\n"
        "if role == 'developer' and round_ == '2' and not os.path.exists(first):\n"
        "    open(first, 'w').write(sys.stdin.read())\n"
        "    sys.exit('developer: lost its connection')\n"
    )
    command = stand_in(tmp_path, crash_once)
    settings = settings_for(
        db_url, orch_home, agent_command=command, failure_summary_enabled=True, agent_retries=2
    )
    task = run_one(store, orch_home, settings)
    assert (task.state, task.round) == (TaskState.DONE, 2)
    made = calls(store, task.id)
    assert [c for c in made if c[1] == "developer" and c[3] == 2] == [
        ("A3", "developer", "agent_error", 2),
        ("A3", "developer", "ok", 2),
    ]
    assert [c for c in made if c[0] == "A7"] == [("A7", "summarizer", "ok", 2)]
    folder = orch_home / "tasks" / task.id
    for attempt in ("prompt-developer-r2-first.txt", "prompt-developer-r2.txt"):
        prompt = (folder / attempt).read_text()
        assert prompt.index("FAKE-SUMMARY-NOTE") < prompt.index("FAKE-REVIEW-NOTE"), attempt


REFUSE_SUMMARIES = {
    "sqlite": [
        "CREATE TRIGGER refuse_summaries BEFORE INSERT ON agent_calls "
        "WHEN NEW.role = 'summarizer' BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_summaries() RETURNS trigger AS $$ BEGIN "
        "IF NEW.role = 'summarizer' THEN RAISE EXCEPTION 'disk is full'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_summaries BEFORE INSERT ON agent_calls "
        "FOR EACH ROW EXECUTE FUNCTION refuse_summaries()",
    ],
}


@pytest.mark.parametrize("fault", ["unreadable note", "accounting fails"])
def test_a_failure_summary_that_raises_leaves_the_pipeline_unchanged(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    before = ""
    if fault == "unreadable note":
        if not Path("/proc/self/mem").is_file():
            pytest.skip("needs Linux's /proc/self/mem, a file whose reading fails with EIO")
        # The note is a file, and reading it raises OSError in the orchestrator.
        before = (
            "if role == 'summarizer':\n"
            "    sys.stdin.read()\n"
            "    os.symlink('/proc/self/mem', artifact)\n"
            "    sys.exit(0)\n"
        )
    else:
        with store.engine.begin() as conn:
            for statement in REFUSE_SUMMARIES[store.engine.dialect.name]:
                conn.execute(text(statement))
    settings = settings_for(
        db_url, orch_home, agent_command=stand_in(tmp_path, before), failure_summary_enabled=True
    )
    task = run_one(store, orch_home, settings)
    assert (task.state, task.round) == (TaskState.DONE, 2)
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert "FAKE-REVIEW-NOTE" in prompt and "FAKE-SUMMARY-NOTE" not in prompt
    assert store.list_alerts(task_id=task.id) == []


def test_the_budget_is_checked_again_after_the_failure_summary(
    fake_bin: Path, make_repo: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    path = make_repo("red")
    failing = shlex.join(["python", "-c", "raise SystemExit(1)"])
    store.add_repo(
        "red",
        RepoSpec(
            str(path),
            default_branch="main",
            skip_stages=AGENT_STAGES_ONLY_SKIP,
            test_command=failing,
        ),
    )
    # Four calls (0.1684) leave room for one more; the summary (0.2105) spends the rest.
    settings = settings_for(
        db_url,
        orch_home,
        agent_backend="claude",
        test_runner_enabled=True,
        failure_summary_enabled=True,
        task_budget_usd=0.2,
    )
    task = submit_task(store, orch_home, "red", "Rename x", "")
    Worker(store, settings, drain=True).run()
    task = store.get_task(task.id)
    assert (task.state, task.stage, task.round) == (TaskState.BLOCKED, Stage.DEVELOPMENT, 2)
    assert "ORCH_TASK_BUDGET_USD" in (task.reason or "")
    assert [(site, n) for site, _, _, n in calls(store, task.id)] == [
        ("A1", 1),
        ("A2", 1),
        ("A3", 1),
        ("A4", 1),
        ("A7", 2),
    ]


# --- secrets never reach an agent -------------------------------------------------------------


def test_no_prompt_carries_a_secret_of_the_orchestrator(
    fake_bin: Path,
    agent_repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "tok-9f2c1e7d5b3a"
    monkeypatch.setenv("ORCH_API_TOKEN", token)
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    settings = settings_for(db_url, orch_home, failure_summary_enabled=True)
    task = submit_task(store, orch_home, "app", "Rotate the key", f"curl -H 'Bearer {token}' /x")
    Worker(store, settings, drain=True).run()
    prompts = sorted((orch_home / "tasks" / task.id).glob("prompt-*.txt"))
    names = [p.name for p in prompts]
    assert "prompt-developer-r2.txt" in names and "prompt-summarizer-r2.txt" in names
    for prompt in prompts:
        assert token not in prompt.read_text(), prompt.name
    assert (
        "Bearer [redacted]" in (orch_home / "tasks" / task.id / "prompt-analyst-r1.txt").read_text()
    )
