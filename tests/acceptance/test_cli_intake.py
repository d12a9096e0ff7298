"""The real `orch` executable: register a repo, submit a task, and refuse bad input cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.helpers import entries, git

OrchExe = Callable[..., subprocess.CompletedProcess[str]]


def test_register_submit_show_list_and_read_artifact(
    orch_exe: OrchExe, make_repo: Callable[..., Path], orch_home: Path, db_url: str
) -> None:
    repo = make_repo("shop")
    added = orch_exe("repo", "add", "shop", str(repo), "--skip-stages", "design,post-deploy")
    assert added.returncode == 0, added.stderr

    created = orch_exe("task", "add", "shop", "Add a --json flag", "-d", "to export", "--json")
    assert created.returncode == 0, created.stderr
    task = json.loads(created.stdout)  # stdout is exactly one JSON document
    assert task["stage"] == "analysis" and task["state"] == "active"
    assert task["branch"] == f"orch/{task['id']}"
    assert Path(task["worktree"]).parent == orch_home / "worktrees"
    assert git(repo, "branch", "--list", task["branch"]).strip().endswith(task["branch"])

    shown = json.loads(orch_exe("task", "show", task["id"], "--json").stdout)
    for key in ("id", "repo", "title", "stage", "state", "round", "events", "artifacts"):
        assert key in shown
    assert (shown["repo"], shown["title"], shown["round"]) == ("shop", "Add a --json flag", 1)
    assert shown["artifacts"] == ["01-task.md"]
    assert shown["events"] == [
        {
            "from_stage": None,
            "to_stage": "analysis",
            "verdict": None,
            "producer": "intake",
            "round": 1,
            "at": shown["events"][0]["at"],
        },
    ]

    listed = json.loads(orch_exe("task", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [task["id"]] and "events" not in listed[0]

    raw = orch_exe("task", "artifact", task["id"], "01-task.md")
    stored = (orch_home / "tasks" / task["id"] / "01-task.md").read_text()
    assert raw.returncode == 0 and raw.stdout == stored


def test_plain_task_add_prints_only_the_id(
    orch_exe: OrchExe, make_repo: Callable[..., Path]
) -> None:
    orch_exe("repo", "add", "app", str(make_repo("app")))
    created = orch_exe("task", "add", "app", "Something")
    assert created.returncode == 0
    assert created.stdout.strip().isalnum() and len(created.stdout.split()) == 1
    assert "analysis" in created.stderr


def test_python_dash_m_orchestrator_is_orch() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "repo" in result.stdout and "task" in result.stdout


BAD_INPUTS = {
    "unknown repo": (["task", "add", "nope", "A title"], "no repo named 'nope'"),
    "not a git repository": (["repo", "add", "other", "{plain}"], "not a git repository"),
    "duplicate repo name": (["repo", "add", "app", "{repo}"], "already exists"),
    "unknown stage": (["repo", "add", "new", "{repo}", "--skip-stages", "desing"], "unknown stage"),
    "mandatory stage": (["repo", "add", "new", "{repo}", "--skip-stages", "testing"], "cannot be"),
    "empty title": (["task", "add", "app", "   "], "title is empty"),
    "escaping task id": (["task", "show", "../../etc"], "invalid task id"),
    "escaping artifact": (["task", "artifact", "abcd2345", "../../x.md"], "invalid artifact"),
    "escaping repo name": (["repo", "add", "../evil", "{repo}"], "invalid repo name"),
    "unsplittable command": (
        ["repo", "add", "new", "{repo}", "--test-command", "pytest 'x"],
        "cannot split",
    ),
    "missing default branch": (
        ["repo", "add", "new", "{repo}", "--default-branch", "nope"],
        "no branch 'nope'",
    ),
    "description twice": (["task", "add", "app", "t", "-d", "x", "-f", "y"], "not both"),
    "missing argument": (["repo", "add", "new"], "Missing argument"),
    "unknown state": (["task", "list", "--state", "paused"], "paused"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_makes_nothing(
    case: str,
    orch_exe: OrchExe,
    orch: Callable[..., Run],
    make_repo: Callable[..., Path],
    orch_home: Path,
    tmp_path: Path,
) -> None:
    repo = make_repo("app")
    assert orch("repo", "add", "app", str(repo)).code == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    args, expected = BAD_INPUTS[case]
    args = [a.format(repo=repo, plain=plain) for a in args]

    result = orch_exe(*args)

    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert [r["name"] for r in json.loads(orch("repo", "list", "--json").out)] == ["app"]
    assert json.loads(orch("task", "list", "--json").out) == []
    assert git(repo, "branch", "--list", "orch/*").strip() == ""
    assert entries(orch_home / "worktrees") == [] and entries(orch_home / "tasks") == []


def test_bad_setting_exits_2_naming_the_key(
    orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_MAX_PARALLEL_JOBS", "abc")
    result = orch_exe("task", "list")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ORCH_MAX_PARALLEL_JOBS: ")
    assert result.stderr.count("\n") == 1
