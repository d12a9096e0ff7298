"""A person retries a failed task: real git, a real pytest suite, `orch` as subprocesses.

The task fails after its budget of returns to development; `orch gc` removes its worktree;
`orch task retry` gives it a new round whose developer reads the test report that failed it,
in a worktree made again from the branch (the repo's setup command runs in it again), with a
fresh budget; the task then lands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import OrchExe, add_task, command_agent, drain, git, show

pytestmark = pytest.mark.slow

# Developers before round 3 change nothing that matters; the developer of round 3 fixes total()
# only when its prompt carries the failing test, so the retry's feedback is what fixes it.
AGENT = """
import os, sys
from pathlib import Path

role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
prompt = sys.stdin.read()
(Path(os.environ["ORCH_ARTIFACT_DIR"]) / f"prompt-{role}-r{round_}.txt").write_text(prompt)
if role == "developer":
    Path(f"notes-{round_}.txt").write_text("tried\\n")
    if round_ >= 3 and "test_total" in prompt:
        Path("calc.py").write_text("def total(xs):\\n    return sum(xs)\\n")
verdicts = {"analyst": "analysis_status: READY", "developer": "dev_status: DONE"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""
FILES = {
    "calc.py": "def total(xs):\n    return 0\n",
    "tests/test_calc.py": (
        "from calc import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
    ),
    ".gitignore": "__pycache__/\nnotes-*.txt\n",
}
# The repo's setup command notes each worktree it runs in, outside the worktree.
SETUP = "import os, pathlib; open(os.environ['SETUP_RUNS'], 'a').write(os.getcwd() + '\\n')"


def test_a_failed_task_retried_gets_a_new_round_with_its_failure_and_lands(
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    tmp_path: Path,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command_agent(tmp_path, monkeypatch, AGENT)
    runs = tmp_path / "setup-runs.txt"
    monkeypatch.setenv("SETUP_RUNS", str(runs))
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_MAX_DEV_RETRIES", "1")
    repo = make_repo("calc", files=FILES)
    setup = f"{sys.executable} -c {json.dumps(SETUP)}"
    added = orch_exe(
        "repo",
        "add",
        "calc",
        str(repo),
        "--skip-stages",
        "design,review,deploy-staging,post-deploy",
        "--setup-command",
        setup,
    )
    assert added.returncode == 0, added.stderr
    task = add_task(orch_exe, "calc", "Make total add")

    early = orch_exe("task", "retry", task)
    assert early.returncode != 0
    assert early.stderr.strip().count("\n") == 0
    assert "is active, not failed" in early.stderr

    drain(orch_exe)
    failed = show(orch_exe, task)
    assert (failed["state"], failed["stage"], failed["round"]) == ("failed", "testing", 2)
    worktree = Path(failed["worktree"])
    assert orch_exe("gc", "--older-than", "0m").returncode == 0
    assert not worktree.exists()

    retried = orch_exe("task", "retry", task)
    assert retried.returncode == 0, retried.stderr
    assert "back in development (round 3)" in retried.stdout + retried.stderr
    drain(orch_exe)

    done = show(orch_exe, task)
    assert (done["state"], done["round"]) == ("done", 3), done.get("reason")
    prompt = (orch_home / "tasks" / task / "prompt-developer-r3.txt").read_text()
    assert "13-test-report.md" in prompt and "test_total" in prompt
    retry = [e for e in done["events"] if e["producer"] == "person"]
    assert [(e["from_stage"], e["to_stage"], e["verdict"], e["round"]) for e in retry] == [
        ("testing", "development", "RETRY", 2)
    ]
    assert runs.read_text().splitlines() == [str(worktree), str(worktree)]
    assert "return sum(xs)" in git(repo, "show", "main:calc.py")

    again = orch_exe("task", "retry", task)
    assert again.returncode != 0
    assert "is done, not failed: nothing to retry" in again.stderr
