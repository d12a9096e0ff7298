"""Stages that wait for a person: real git, a real pytest suite, `orch` as subprocesses.

With the deploy-finalizer and the post-deploy monitor switched off, deploy and post-deploy
have no producer but a person. The task blocks there, says so, and refuses a resume that
would only block it again; a person approves the deploy (done by hand), rejects the watch
with a reason, retries the failed task, whose developer reads that reason, and approves
both stages of the new round: done, with every person's verdict in the history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import OrchExe, add_task, command_agent, drain, one_line_refusal, show

pytestmark = pytest.mark.slow

AGENT = """
import os, sys
from pathlib import Path

role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
prompt = sys.stdin.read()
(Path(os.environ["ORCH_ARTIFACT_DIR"]) / f"prompt-{role}-r{round_}.txt").write_text(prompt)
if role == "developer":
    Path("page.py").write_text(f"TITLE = 'round {round_}'\\n")
verdicts = {"analyst": "analysis_status: READY", "developer": "dev_status: DONE"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""
FILES = {
    "page.py": "TITLE = ''\n",
    "tests/test_page.py": "import page\n\n\ndef test_page():\n    assert page.TITLE is not None\n",
    ".gitignore": "__pycache__/\n",
}


def test_a_person_passes_and_fails_the_stages_only_a_person_can_produce(
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    tmp_path: Path,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command_agent(tmp_path, monkeypatch, AGENT)
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_DEPLOY_FINALIZER_ENABLED", "false")
    monkeypatch.setenv("ORCH_POST_DEPLOY_MONITOR_ENABLED", "false")
    repo = make_repo("page", files=FILES)
    skips = "design,review,deploy-staging"
    assert orch_exe("repo", "add", "page", str(repo), "--skip-stages", skips).returncode == 0
    task = add_task(orch_exe, "page", "Give the page a title")

    one_line_refusal(orch_exe("task", "approve", task), "no stage waits for a person")
    drain(orch_exe)
    waiting = show(orch_exe, task)
    assert (waiting["state"], waiting["stage"], waiting["waits_for"]) == (
        "blocked",
        "deploy",
        "person",
    )
    assert "waits for a person" in orch_exe("task", "show", task).stdout
    one_line_refusal(orch_exe("task", "resume", task), f"orch task approve {task}")
    assert orch_exe("task", "reject", task).returncode == 2  # --reason is required

    approved = orch_exe("task", "approve", task, "--note", "Deployed by hand at 10:00")
    assert approved.returncode == 0, approved.stderr
    assert "on to post-deploy" in approved.stdout + approved.stderr
    drain(orch_exe)
    assert show(orch_exe, task)["waits_for"] == "person"  # post-deploy, the monitor is off
    rejected = orch_exe("task", "reject", task, "--reason", "The page is blank in production")
    assert rejected.returncode == 0, rejected.stderr
    failed = show(orch_exe, task)
    assert (failed["state"], failed["stage"], failed["waits_for"]) == (
        "failed",
        "post-deploy",
        None,
    )

    assert orch_exe("task", "retry", task).returncode == 0
    drain(orch_exe)
    prompt = (orch_home / "tasks" / task / "prompt-developer-r2.txt").read_text()
    assert "The page is blank in production" in prompt and "17-monitor-report.md" in prompt
    for stage in ("deploy", "post-deploy"):
        assert show(orch_exe, task)["stage"] == stage
        assert orch_exe("task", "approve", task).returncode == 0
        drain(orch_exe)

    done = show(orch_exe, task)
    assert (done["state"], done["round"], done["waits_for"]) == ("done", 2, None)
    by_person = [
        (e["from_stage"], e["to_stage"], e["verdict"], e["round"])
        for e in done["events"]
        if e["producer"] == "person"
    ]
    assert by_person == [
        ("deploy", "post-deploy", "DEPLOYED", 1),
        ("post-deploy", "failed", "UNHEALTHY", 1),
        ("post-deploy", "development", "RETRY", 1),
        ("deploy", "post-deploy", "DEPLOYED", 2),
        ("post-deploy", "done", "HEALTHY", 2),
    ]
    log = orch_exe("task", "artifact", task, "16-deploy-log.md", "--round", "1").stdout
    assert "deploy_status: DEPLOYED" in log and "Deployed by hand at 10:00" in log
    assert "producer: person" in log
    listed = json.loads(orch_exe("task", "list", "--json").stdout)
    assert [t["state"] for t in listed] == ["done"]
