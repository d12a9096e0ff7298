"""End to end with real runners: real pytest, a real staging suite, a real merge.

The developer's first round breaks a test; the test-runner catches it and sends the task back
with its report; the second round fixes it, and the task goes through staging, deploy and
the health watch to done. No LLM tester or deployer runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orchestrator.api import create_app
from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.api_server import running_app
from tests.helpers import git

OrchExe = Callable[..., subprocess.CompletedProcess[str]]

AGENT = """
import os, sys
from pathlib import Path

role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
folder = Path(os.environ["ORCH_ARTIFACT_DIR"])
(folder / f"prompt-{role}-r{round_}.txt").write_text(sys.stdin.read())
if role == "developer":
    body = "a + b" if round_ == 1 else "a * b"  # round 1 is wrong on purpose
    code = "def add(a, b):\\n    return a + b\\n\\n"
    Path("calc.py").write_text(code + f"def mul(a, b):\\n    return {body}\\n")
verdicts = {"analyst": "analysis_status: READY", "architect": "design_status: READY",
            "developer": "dev_status: DONE", "reviewer": "review_verdict: APPROVED"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""


@pytest.fixture
def calc_repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo(
        "calc",
        files={
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": (
                "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                "def test_mul():\n    from calc import mul\n\n    assert mul(3, 4) == 12\n"
            ),
            "staging_check.py": "import calc\n\nassert calc.mul(2, 5) == 10, 'staging'\n",
            ".gitignore": "__pycache__/\n",
        },
    )


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "bin" / "calc-agent"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n{AGENT}")
    script.chmod(0o755)
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    monkeypatch.setenv("ORCH_AGENT_COMMAND", str(script))
    monkeypatch.setenv("ORCH_MONITOR_WINDOW_S", "0.4")
    monkeypatch.setenv("ORCH_MONITOR_INTERVAL_S", "0.2")
    return script


def test_broken_round_is_caught_by_real_pytest_then_fixed_merged_and_done(
    db_url: str, calc_repo: Path, agent: Path, orch_exe: OrchExe, orch_home: Path
) -> None:
    (calc_repo / "notes.txt").write_text("the user's own untracked notes\n")
    added = orch_exe(
        "repo", "add", "calc", str(calc_repo), "--staging-command", "python staging_check.py"
    )
    assert added.returncode == 0, added.stderr
    task_id = json.loads(orch_exe("task", "add", "calc", "Add mul", "--json").stdout)["id"]

    drained = orch_exe("worker", "--drain")
    assert drained.returncode == 0, drained.stderr

    task = json.loads(orch_exe("task", "show", task_id, "--json").stdout)
    assert (task["state"], task["round"]) == ("done", 2)
    moves = [(e["from_stage"], e["to_stage"], e["verdict"], e["producer"]) for e in task["events"]]
    assert ("testing", "development", "FAIL", "test-runner") in moves
    assert ("testing", "deploy-staging", "PASS", "test-runner") in moves
    assert ("deploy-staging", "deploy", "PASSED", "staging-runner") in moves
    assert ("deploy", "post-deploy", "DEPLOYED", "deploy-finalizer") in moves
    assert ("post-deploy", "done", "SKIPPED", "post-deploy-monitor") in moves
    producers = {e["producer"] for e in task["events"]}
    assert not producers & {"tester", "deployer"}  # no LLM on the control path

    failing = orch_exe("task", "artifact", task_id, "13-test-report.md", "--round", "1").stdout
    for line in ("result: FAIL", "status: FAIL", "tests_failed: 1", "failure_kind: tests"):
        assert line in failing.splitlines()
    assert "tests/test_calc.py::test_mul" in failing
    prompt = (orch_home / "tasks" / task_id / "prompt-developer-r2.txt").read_text()
    assert "tests/test_calc.py::test_mul" in prompt and "result: FAIL" in prompt

    passing = orch_exe("task", "artifact", task_id, "13-test-report.md").stdout
    for line in ("result: PASS", "status: PASS", "tests_failed: 0", "producer: test-runner"):
        assert line in passing.splitlines()

    deploy_log = orch_exe("task", "artifact", task_id, "16-deploy-log.md").stdout
    merged = next(line.split()[1] for line in deploy_log.splitlines() if line.startswith("merged_"))
    assert git(calc_repo, "rev-parse", "main").strip() == merged
    assert "return a * b" in (calc_repo / "calc.py").read_text()  # the working copy moved too
    assert (calc_repo / "notes.txt").read_text() == "the user's own untracked notes\n"
    assert not Path(task["worktree"]).exists()

    # `orch task show` tells the story, as the demo does.
    shown = orch_exe("task", "show", task_id).stdout
    rows = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
    assert "ended done after 2 round(s)" in rows["task"]
    assert "tests/test_calc.py::test_mul" in rows["caught"]
    assert merged[:12] in rows["merged"]
    assert "2 by agents" not in rows["verdicts"] and "test-runner ×2" in rows["verdicts"]
    assert "round 1:" in rows["artifacts"] and "13-test-report.md" in rows["artifacts"]
    assert f"removed (the branch orch/{task_id} stays)" in rows["worktree"]

    # The dashboard's task page names the merged commit too.
    settings = load_settings(db_url=db_url, home=orch_home)
    store = open_store(settings)
    try:
        with running_app(create_app(settings, store, cache_ttl_s=0)) as base_url:
            page = httpx.get(f"{base_url}/ui/tasks/{task_id}").text
        assert f'<code class="merged" title="{merged}">{merged[:12]}</code>' in page
    finally:
        store.close()
