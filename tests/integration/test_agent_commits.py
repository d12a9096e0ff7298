"""Whatever an agent commits itself is kept: published for remote repos, and merged.

Claude Code and Codex often commit on their own. Before, only the orchestrator's commit of an
agent's leftovers was pushed, so on a remote repo the task branch never got such work and the
deploy merged nothing, while the task said done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import OrchExe, add_task, command_agent, drain, git, show

# A command agent that commits its own work as a developer, and can leave the worktree in a
# state the orchestrator must refuse (AGENT_GIT: detach or rewrite).
AGENT = """
import os, subprocess
from pathlib import Path

role = os.environ["ORCH_ROLE"]
def git(*args):
    subprocess.run(["git", *args], check=True, capture_output=True)
if role == "developer":
    Path("feature.py").write_text("def feature():\\n    return 42\\n")
    git("add", "feature.py")
    git("commit", "-q", "-m", "developer: add feature (its own commit)")
    mode = os.environ.get("AGENT_GIT", "")
    if mode == "detach":
        git("checkout", "-q", "--detach")
    elif mode == "rewrite":  # squash its commit into the one its job started from
        git("reset", "-q", "--soft", "HEAD~1")
        git("commit", "-q", "--amend", "-m", "squashed into the base")
verdicts = {"analyst": "analysis_status: READY", "developer": "dev_status: DONE"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""
FILES = {
    "app.py": "VALUE = 1\n",
    "tests/test_app.py": "def test_app():\n    assert True\n",
    ".gitignore": "__pycache__/\n",
}
QUICK = "design,review,deploy-staging,post-deploy"


@pytest.fixture
def committing_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    command_agent(tmp_path, monkeypatch, AGENT)
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_AGENT_RETRIES", "0")


def _run(orch_exe: OrchExe, where: str) -> dict[str, object]:
    assert orch_exe("repo", "add", "app", where, "--skip-stages", QUICK).returncode == 0
    task_id = add_task(orch_exe, "app", "Add the feature")
    drain(orch_exe)
    return show(orch_exe, task_id)


@pytest.mark.usefixtures("committing_agent")
def test_an_agents_own_commit_reaches_the_default_branch_of_a_local_repo(
    make_repo: Callable[..., Path], orch_exe: OrchExe
) -> None:
    repo = make_repo("app", files=FILES)
    shown = _run(orch_exe, str(repo))
    assert shown["state"] == "done", shown.get("reason")
    assert "return 42" in git(repo, "show", "main:feature.py")
    assert "its own commit" in git(repo, "log", "--format=%s", "main")


@pytest.mark.usefixtures("committing_agent")
def test_an_agents_own_commit_is_pushed_and_merged_on_a_bare_remote(
    make_repo: Callable[..., Path], orch_exe: OrchExe, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(make_repo("app", files=FILES)), str(origin))
    shown = _run(orch_exe, str(origin))
    assert shown["state"] == "done", shown.get("reason")
    assert "return 42" in git(origin, "show", "main:feature.py")
    assert "its own commit" in git(origin, "log", "--format=%s", "main")


@pytest.mark.usefixtures("committing_agent")
@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("detach", "left the worktree on a detached HEAD"),
        ("rewrite", "rewrote orch/"),
    ],
)
def test_an_agent_that_leaves_its_branch_is_refused_and_its_work_kept(
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    words: str,
) -> None:
    monkeypatch.setenv("AGENT_GIT", mode)
    repo = make_repo("app", files=FILES)
    shown = _run(orch_exe, str(repo))
    assert (shown["state"], shown["stage"]) == ("blocked", "development")
    reason = str(shown["reason"])
    assert words in reason and "nothing was changed" in reason
    kept = reason.split("kept as ")[1].split()[0].rstrip(".")
    assert "return 42" in git(repo, "show", f"{kept}:feature.py")
    assert "feature.py" not in git(repo, "ls-tree", "--name-only", "main")
