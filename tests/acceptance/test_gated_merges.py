"""What ships is what was tested: concurrent tasks on one repo, real git, real pytest.

Two tasks that pass alone but break the default branch together must not both merge green;
a commit that reaches the task branch after its test must not ship untested; N independent
tasks all land in round 1. After each run, every first-parent commit of the default branch is
checked out and its suite run: main must be green at every merge.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.api.app import create_app
from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.api_server import running_app
from tests.conftest import ORCH_EXE
from tests.helpers import OrchExe, add_task, command_agent, drain, git, show

pytestmark = pytest.mark.slow

# A command agent. Developers of round 1 do what their task's title says; a later round
# (sent back by a test report) does what the report calls for: renames the calls of total()
# that no longer import, or resolves a merge left in progress. Every prompt is kept for the
# test, and every call counted.
AGENT = """
import os, re, sys
from pathlib import Path

role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
prompt = sys.stdin.read()
folder = Path(os.environ["ORCH_ARTIFACT_DIR"])
(folder / f"prompt-{role}-r{round_}.txt").write_text(prompt)
with open(os.environ["AGENT_CALLS"], "a") as calls:
    calls.write(f"{os.environ['ORCH_TASK_ID']} {role} {round_}\\n")
if role == "developer" and round_ == 1:
    if "Rename total" in prompt:
        Path("calc.py").write_text("def sum_all(xs):\\n    return sum(xs)\\n")
        test = Path("tests/test_calc.py")
        test.write_text(test.read_text().replace("total", "sum_all"))
    elif "Set VALUE to" in prompt:
        number = re.search(r"Set VALUE to (\\d)", prompt).group(1)
        Path("value.py").write_text(f"VALUE = {number}  # set by its task\\n")
    elif "Test total" in prompt:
        Path("tests/test_three.py").write_text(
            "from calc import total\\n\\n\\ndef test_three():\\n    assert total([1, 2, 3]) == 6\\n"
        )
    else:
        name = re.search(r"Add (\\w+)", prompt).group(1)
        Path(f"{name}.py").write_text(f"VALUE = {len(name)}\\n")
        Path(f"tests/test_{name}.py").write_text(
            f"import {name}\\n\\n\\ndef test_{name}():\\n    assert {name}.VALUE == {len(name)}\\n"
        )
elif role == "developer":
    if "cannot import name 'total'" in prompt:  # what the report says, the fix follows
        for test in Path("tests").glob("test_*.py"):
            test.write_text(test.read_text().replace("total", "sum_all"))
    for source in Path(".").glob("*.py"):  # a merge left in progress: keep our side
        text = source.read_text()
        if "<<<<<<<" in text:
            ours = text.split("<<<<<<<", 1)[1].split("\\n", 1)[1].split("=======", 1)[0]
            source.write_text(ours)
verdicts = {"analyst": "analysis_status: READY", "developer": "dev_status: DONE"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""
FILES = {
    "calc.py": "def total(xs):\n    return sum(xs)\n",
    "tests/test_calc.py": (
        "from calc import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
    ),
    "value.py": "VALUE = 1\n",
    "tests/test_value.py": (
        "from value import VALUE\n\n\ndef test_value():\n    assert VALUE in (1, 2, 3)\n"
    ),
    ".gitignore": "__pycache__/\n",
}
QUICK = "design,review,deploy-staging,post-deploy"


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file each agent call is logged to; the agent is set up as the command backend."""
    command_agent(tmp_path, monkeypatch, AGENT)
    log = tmp_path / "agent-calls.txt"
    log.touch()
    monkeypatch.setenv("AGENT_CALLS", str(log))
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_MAX_PARALLEL_JOBS", "4")
    return log


def _test_runs(shown: dict[str, Any]) -> int:
    return sum(1 for e in shown["events"] if e["producer"] == "test-runner")


def assert_green_at_every_merge(repo: Path, tmp_path: Path) -> list[str]:
    """Run the suite on every first-parent commit of main; the commits, newest first."""
    commits = git(repo, "rev-list", "--first-parent", "main").split()
    for index, commit in enumerate(commits):
        tree = tmp_path / f"main-{index}"
        git(repo, "worktree", "add", "--quiet", "--detach", str(tree), commit)
        suite = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        assert suite.returncode == 0, f"main is red at {commit[:12]}:\n{suite.stdout}"
        git(repo, "worktree", "remove", "--force", str(tree))
    return commits


@pytest.mark.parametrize("where", ["local", "bare remote"])
def test_two_tasks_that_break_main_together_never_both_merge_green(
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    calls: Path,
    tmp_path: Path,
    orch_home: Path,
    where: str,
) -> None:
    repo = make_repo("calc", files=FILES)
    if where == "bare remote":  # merged and pushed there by the deploy, fenced
        origin = tmp_path / "origin.git"
        git(tmp_path, "clone", "--bare", "--quiet", str(repo), str(origin))
        repo = origin
    assert orch_exe("repo", "add", "calc", str(repo), "--skip-stages", QUICK).returncode == 0
    rename = add_task(orch_exe, "calc", "Rename total to sum_all")
    three = add_task(orch_exe, "calc", "Test total on three numbers")
    drain(orch_exe)

    shown = {task: show(orch_exe, task) for task in (rename, three)}
    assert [s["state"] for s in shown.values()] == ["done", "done"], [
        s.get("reason") for s in shown.values()
    ]
    second = next(task for task, s in shown.items() if s["round"] == 2)
    first = rename if second == three else three
    assert shown[first]["round"] == 1
    prompt = (orch_home / "tasks" / second / "prompt-developer-r2.txt").read_text()
    # The merged tree fails at collection: the report names the test file and the error.
    assert "## Failing tests" in prompt and "`tests/test_three.py" in prompt
    assert "cannot import name 'total'" in prompt
    assert "13-test-report.md" in prompt
    merges = assert_green_at_every_merge(repo, tmp_path)
    assert len(merges) == 3  # the initial commit and one merge per task
    assert "return sum(xs)" in git(repo, "show", "main:calc.py")
    assert "sum_all" in git(repo, "show", "main:tests/test_three.py")


def test_a_commit_pushed_to_the_branch_after_its_test_is_tested_before_it_ships(
    make_repo: Callable[..., Path], orch_exe: OrchExe, calls: Path, tmp_path: Path
) -> None:
    pushed = tmp_path / "pushed-once"
    stage = (
        "import pathlib, subprocess\n"
        f"marker = pathlib.Path({str(pushed)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    pathlib.Path('notes.txt').write_text('pushed after testing\\n')\n"
        "    subprocess.run(['git', 'add', 'notes.txt'], check=True)\n"
        "    subprocess.run(['git', 'commit', '-q', '-m', 'pushed after testing'], check=True)\n"
    )
    repo = make_repo("calc", files={**FILES, "stage.py": stage})
    added = orch_exe(
        "repo", "add", "calc", str(repo), "--skip-stages", "design,review,post-deploy",
        "--staging-command", "python stage.py",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    task = add_task(orch_exe, "calc", "Add extra")
    drain(orch_exe)

    shown = show(orch_exe, task)
    assert (shown["state"], shown["round"]) == ("done", 1), shown.get("reason")
    moves = [(e["from_stage"], e["to_stage"], e["verdict"]) for e in shown["events"]]
    assert ("deploy", "testing", "RETEST") in moves
    assert _test_runs(shown) == 2
    report = orch_exe("task", "artifact", task, "13-test-report.md").stdout
    tested = report.split("tested_commit: ")[1].split()[0]
    assert "pushed after testing" in git(repo, "log", "--format=%s", tested)
    merged = git(repo, "rev-parse", "main").strip()
    assert git(repo, "rev-parse", f"{merged}^{{tree}}") == git(
        repo, "rev-parse", f"{tested}^{{tree}}"
    )
    judged = [(j["round"], j["producer"], j["tested_commit"]) for j in shown["judged_commits"]]
    assert [p for _, p, _ in judged] == [
        "test-runner", "staging-runner", "deploy-finalizer", "test-runner", "staging-runner",
        "deploy-finalizer",
    ]  # fmt: skip
    assert judged[3][2] == tested and judged[0][2] != tested
    # The dashboard's task page shows the same, per round.
    settings = load_settings()
    store = open_store(settings)
    try:
        with running_app(create_app(settings, store, cache_ttl_s=0)) as url:
            page = httpx.get(f"{url}/ui/tasks/{task}", timeout=10).text
    finally:
        store.close()
    assert "What was tested" in page and f'title="{tested}"' in page
    # The re-test was code only: one analyst and one developer call, no more.
    assert len(calls.read_text().splitlines()) == 2


def test_independent_tasks_all_land_in_round_one_and_main_stays_green(
    make_repo: Callable[..., Path], orch_exe: OrchExe, calls: Path, tmp_path: Path
) -> None:
    repo = make_repo("calc", files=FILES)
    assert orch_exe("repo", "add", "calc", str(repo), "--skip-stages", QUICK).returncode == 0
    names = ["alpha", "beta", "gamma", "delta"]
    tasks = [add_task(orch_exe, "calc", f"Add {name}") for name in names]
    drain(orch_exe)

    shown = [show(orch_exe, task) for task in tasks]
    assert [(s["state"], s["round"]) for s in shown] == [("done", 1)] * len(tasks)
    runs = [_test_runs(s) for s in shown]
    print(f"test-runner runs per task: {runs}")
    assert all(run >= 1 for run in runs)
    assert len(assert_green_at_every_merge(repo, tmp_path)) == 1 + len(tasks)
    assert len(calls.read_text().splitlines()) == 2 * len(tasks)  # re-tests call no agent


def test_a_textual_conflict_is_found_at_testing_and_resolved_in_the_next_round(
    make_repo: Callable[..., Path], orch_exe: OrchExe, calls: Path, tmp_path: Path, orch_home: Path
) -> None:
    repo = make_repo("calc", files=FILES)
    assert orch_exe("repo", "add", "calc", str(repo), "--skip-stages", QUICK).returncode == 0
    tasks = [
        add_task(orch_exe, "calc", "Set VALUE to 2"),
        add_task(orch_exe, "calc", "Set VALUE to 3"),
    ]
    drain(orch_exe)

    shown = {task: show(orch_exe, task) for task in tasks}
    assert [s["state"] for s in shown.values()] == ["done", "done"]
    second = next(task for task, s in shown.items() if s["round"] == 2)
    report = orch_exe("task", "artifact", second, "13-test-report.md", "--round", "1").stdout
    assert "failure_kind: conflict" in report and "`value.py`" in report
    prompt = (orch_home / "tasks" / second / "prompt-developer-r2.txt").read_text()
    assert "## Your branch and its base" in prompt and "conflict markers in" in prompt
    assert len(assert_green_at_every_merge(repo, tmp_path)) == 3
    merge = git(repo, "log", "-1", "--format=%P", f"orch/{second}").split()
    assert len(merge) == 2, "the developer's resolution concludes the merge of main"


def test_a_worker_killed_after_the_merge_neither_merges_twice_nor_ships_untested(
    make_repo: Callable[..., Path], orch_exe: OrchExe, calls: Path, tmp_path: Path
) -> None:
    started = tmp_path / "deploy-started"
    attempts = tmp_path / "deploy-attempts"
    deploy = (
        "import os, pathlib, time\n"
        f"with open({str(attempts)!r}, 'a') as seen:\n"
        "    seen.write(os.environ['ORCH_DEPLOY_ATTEMPT'] + '\\n')\n"
        f"marker = pathlib.Path({str(started)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    time.sleep(120)\n"
    )
    repo = make_repo("calc", files={**FILES, "deploy.py": deploy})
    added = orch_exe(
        "repo", "add", "calc", str(repo), "--skip-stages", QUICK,
        "--deploy-command", "python deploy.py",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    first, second = (
        add_task(orch_exe, "calc", "Add first"),
        add_task(orch_exe, "calc", "Add second"),
    )
    worker = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # one task merged, and its deploy command is running
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    drain(orch_exe)

    shown = [show(orch_exe, task) for task in (first, second)]
    assert [(s["state"], s["round"]) for s in shown] == [("done", 1), ("done", 1)]
    # The killed deploy command ran again, and could tell: ORCH_DEPLOY_ATTEMPT (runners.md).
    seen = [int(n) for n in attempts.read_text().split()]
    assert seen[0] == 1 and len(seen) == 3 and max(seen) >= 2, seen
    merges = assert_green_at_every_merge(repo, tmp_path)
    assert len(merges) == 3, "one merge per task: the killed deploy was not merged again"
    for s in shown:
        deployed = [j for j in s["judged_commits"] if j["producer"] == "deploy-finalizer"][-1]
        tested = [j for j in s["judged_commits"] if j["producer"] == "test-runner"][-1]
        assert deployed["tested_commit"] == tested["tested_commit"]
        # The tested commit may be a speculative one (the branch merged with the task ahead):
        # what binds is its tree, which one of the merges on main has exactly.
        tree = git(repo, "rev-parse", f"{tested['tested_commit']}^{{tree}}").strip()
        assert tested["tested_tree"] == tree
        task_merges = merges[:-1]  # newest first; the last is the initial commit
        shipped = [git(repo, "rev-parse", f"{m}^{{tree}}").strip() for m in task_merges]
        assert tree in shipped
