"""A repo's own pipeline (`orch.toml`): real git, a real pytest suite, `orch` as subprocesses.

The repo declares development, a `lint` check, testing, an `approve` approval and deploy.
The task runs them in that order: the lint fails the first round and sends the task back
with its output in the developer's prompt; the approval waits, with no job, until a person
approves; then the deploy merges. The first round's agent also rewrites `orch.toml` in its
branch to drop the lint and the approval, which changes nothing for its own task.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.helpers import OrchExe, add_task, command_agent, drain, git, one_line_refusal, show

pytestmark = pytest.mark.slow

PIPELINE = """\
[[stage]]
name = "development"

[[stage]]
name = "lint"
kind = "check"
command = ["python", "lint.py"]
timeout_s = 60
on_fail = "development"

[[stage]]
name = "testing"

[[stage]]
name = "approve"
kind = "approval"

[[stage]]
name = "deploy"
"""
LINT = """\
import sys
from pathlib import Path

found = [f"page.py:{n}: print() left in" for n, line in
         enumerate(Path("page.py").read_text().splitlines(), 1) if "print(" in line]
print("\\n".join(found) or "clean")
sys.exit(1 if found else 0)
"""
FILES = {
    "orch.toml": PIPELINE,
    "lint.py": LINT,
    "page.py": "TITLE = ''\n",
    "tests/test_page.py": "import page\n\n\ndef test_page():\n    assert page.TITLE\n",
    ".gitignore": "__pycache__/\n",
}
# Round 1 leaves a print() in and tries to drop the lint and the approval from orch.toml.
AGENT = """
import os, sys
from pathlib import Path

role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
(Path(os.environ["ORCH_ARTIFACT_DIR"]) / f"prompt-{role}-r{round_}.txt").write_text(
    sys.stdin.read()
)
if round_ == 1:
    Path("page.py").write_text("TITLE = 'Home'\\nprint(TITLE)\\n")
    Path("orch.toml").write_text('[[stage]]\\nname = "development"\\n')
else:
    Path("page.py").write_text("TITLE = 'Home'\\n")
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text("# developer\\n\\ndev_status: DONE\\n")
"""


def test_a_repo_pipeline_runs_its_check_and_waits_for_its_approval(
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    tmp_path: Path,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command_agent(tmp_path, monkeypatch, AGENT)
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    repo = make_repo("page", files=FILES)
    assert orch_exe("repo", "add", "page", str(repo)).returncode == 0
    shown = json.loads(orch_exe("repo", "show", "page", "--pipeline", "--json").stdout)
    assert shown["source"] == "orch.toml"
    stages = [(s["name"], s["kind"], s["on_pass"]) for s in shown["stages"]]
    assert stages == [
        ("development", "built-in", "lint"),
        ("lint", "check", "testing"),
        ("testing", "built-in", "approve"),
        ("approve", "approval", "deploy"),
        ("deploy", "built-in", "done"),
    ]

    task = add_task(orch_exe, "page", "Give the page a title")
    drain(orch_exe)
    waiting = show(orch_exe, task)
    assert (waiting["state"], waiting["stage"], waiting["waits_for"]) == (
        "blocked",
        "approve",
        "person",
    )
    assert waiting["pipeline"] == ["development", "lint", "testing", "approve", "deploy"]
    moves = [(e["from_stage"], e["to_stage"], e["verdict"]) for e in waiting["events"]]
    assert moves == [
        (None, "development", None),
        ("development", "lint", "DONE"),
        ("lint", "development", "FAIL"),
        ("development", "lint", "DONE"),
        ("lint", "testing", "PASS"),
        ("testing", "approve", "PASS"),
    ]
    # The lint's output reached the developer of round 2, with the report that failed it.
    prompt = (orch_home / "tasks" / task / "prompt-developer-r2.txt").read_text()
    assert "page.py:2: print() left in" in prompt and "11-lint.md" in prompt
    report = orch_exe("task", "artifact", task, "13-test-report.md").stdout
    assert "result: PASS" in report and "1 passed" in report  # the real suite ran

    # No job runs while the approval waits: every job of the task has ended.
    store = open_store(load_settings())
    try:
        assert {job.status for job in store.task_jobs(task)} == {"done"}
        queue = json.loads(orch_exe("queue", "--json").stdout)
        assert [w["task_id"] for w in queue["waiting_for_person"]] == [task]
    finally:
        store.close()
    one_line_refusal(orch_exe("task", "resume", task), f"orch task approve {task}")

    approved = orch_exe("task", "approve", task, "--note", "Read the diff: fine")
    assert approved.returncode == 0, approved.stderr
    drain(orch_exe)
    done = show(orch_exe, task)
    assert (done["state"], done["stage"], done["round"]) == ("done", "deploy", 2)
    assert [e["to_stage"] for e in done["events"]][-2:] == ["deploy", "done"]
    assert f"Merge orch/{task}" in git(repo, "log", "--format=%s", "main")
    approval = orch_exe("task", "artifact", task, "14-approve.md").stdout
    assert "approval_status: APPROVED" in approval and "> Read the diff: fine" in approval


BAD_FILES = [
    ("[[stage]]\nname = 'development'\nkind = 'lint'\n", "unknown kind 'lint'"),
    ('[[stage]]\nname = "development"\n[[stage]]\nname = "lint"\nkind = "check"\n'
     'command = "ruff check ."\n', "never a shell string"),
    ('[[stage]]\nname = "lint"\nkind = "check"\ncommand = ["ruff"]\n[[stage]]\n'
     'name = "development"\n', "does not come before it"),
    ('[[stage]]\nname = "development"\n[[stage]]\nname = "post-deploy"\n', "needs deploy"),
    ('[[stage]]\nname = "development"\n[[stage]]\nname = "development"\n', "listed twice"),
    ('[stages]\nname = "development"\n', "unknown key 'stages'"),
    ("[[stage]\n", "not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_pipeline_file_is_refused_with_one_line_and_nothing_registered(
    make_repo: Callable[..., Path], orch_exe: OrchExe, text: str, problem: str
) -> None:
    repo = make_repo("page", files={"orch.toml": text, "page.py": ""})
    one_line_refusal(orch_exe("repo", "add", "page", str(repo)), problem)
    assert json.loads(orch_exe("repo", "list", "--json").stdout) == []


def test_a_file_broken_after_registration_is_refused_at_task_start_and_at_repo_set(
    make_repo: Callable[..., Path], orch_exe: OrchExe, orch_home: Path
) -> None:
    repo = make_repo("page", files={"orch.toml": PIPELINE, "page.py": ""})
    assert orch_exe("repo", "add", "page", str(repo)).returncode == 0
    git(repo, "switch", "-q", "-c", "next")
    (repo / "orch.toml").write_text('[[stage]]\nname = "deploy"\n')
    git(repo, "commit", "-qam", "deploy alone")
    one_line_refusal(
        orch_exe("repo", "set", "page", "--default-branch", "next"), "needs testing before it"
    )
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "next")  # main itself now declares a pipeline no task can run

    one_line_refusal(orch_exe("task", "add", "page", "Ship it"), "needs testing before it")
    assert json.loads(orch_exe("task", "list", "--json").stdout) == []
    assert git(repo, "branch", "--list", "orch/*") == ""  # no branch, worktree or files left
    assert not list((orch_home / "worktrees").glob("*"))
    assert not list((orch_home / "tasks").glob("*"))
    shown = orch_exe("repo", "show", "page", "--pipeline")
    one_line_refusal(shown, "needs testing before it")


def test_a_remote_repo_pipeline_is_read_from_its_default_branch(
    make_repo: Callable[..., Path], orch_exe: OrchExe, tmp_path: Path
) -> None:
    work = make_repo("page", files={"orch.toml": PIPELINE, "page.py": ""})
    bare = tmp_path / "page.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    assert orch_exe("repo", "add", "page", str(bare)).returncode == 0
    shown = json.loads(orch_exe("repo", "show", "page", "--pipeline", "--json").stdout)
    assert [s["name"] for s in shown["stages"]] == [
        "development", "lint", "testing", "approve", "deploy"
    ]  # fmt: skip
    task = add_task(orch_exe, "page", "Give the page a title")
    assert show(orch_exe, task)["pipeline"] == [s["name"] for s in shown["stages"]]
