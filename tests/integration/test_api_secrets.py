"""Our secrets (SPEC 13): whatever a user or an agent writes, they leave redacted, every way out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.intake import submit_task
from orchestrator.store import Store
from tests.api_support import TOKEN, Serve, add_app_repo, assert_error, drain, server_factory
from tests.conftest import Run
from tests.helpers import command_agent

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LEAKY = f"The token is {TOKEN}."
MASKED = "The token is [redacted]."


@pytest.fixture
def serve(store: Store, db_url: str, orch_home: Path) -> Iterator[Serve]:
    with server_factory(store, db_url, orch_home) as start:
        yield start


@pytest.fixture
def repo_path(make_repo: Callable[..., Path], store: Store) -> Path:
    return add_app_repo(make_repo, store)


def submit(api: httpx.Client, description: str = LEAKY) -> httpx.Response:
    body = {"repo": "app", "title": "Leak", "description": description}
    created = api.post("/tasks", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    return created


def test_a_secret_in_a_description_is_kept_as_written_and_served_masked(
    repo_path: Path, serve: Serve, store: Store, orch_home: Path
) -> None:
    api = serve(api_token=TOKEN)
    created = submit(api)
    task_id = created.json()["id"]
    assert TOKEN not in created.text and created.json()["description"] == MASKED
    for path in (f"/tasks/{task_id}", "/tasks", f"/ui/tasks/{task_id}"):
        served = api.get(path)
        assert served.status_code == 200 and TOKEN not in served.text, path
    assert api.get("/tasks").json()["tasks"][0]["description"] == MASKED
    assert store.get_task(task_id).description == LEAKY  # nothing the user wrote is lost
    # The stored artifact, in the database and on disk, is redacted (and agents read it).
    stored = store.get_artifact(task_id, "01-task.md").text
    on_disk = (orch_home / "tasks" / task_id / "01-task.md").read_text()
    assert stored == on_disk and MASKED in stored and TOKEN not in stored


def test_job_logs_artifacts_and_agent_prompts_hold_no_secret(
    fake_bin: Path, repo_path: Path, serve: Serve, store: Store, db_url: str, orch_home: Path
) -> None:
    api = serve(api_token=TOKEN)
    task_id = submit(api).json()["id"]
    for suffix in ("", "/rendered"):
        served = api.get(f"/tasks/{task_id}/artifacts/01-task.md{suffix}").text
        assert MASKED in served and TOKEN not in served
    # The agent prints its arguments, so its output holds the token.
    drain(store, db_url, orch_home, api_token=TOKEN, agent_command=f"fake-agent {{role}} {TOKEN}")
    prompt = (orch_home / "tasks" / task_id / "prompt-analyst-r1.txt").read_text()
    assert MASKED in prompt and TOKEN not in prompt  # the prompt is built from 01-task.md
    jobs = api.get(f"/tasks/{task_id}/jobs").json()
    assert [j["producer"] for j in jobs][:2] == ["analyst", "architect"]
    assert all(j["status"] == "done" and j["task_id"] == task_id for j in jobs)
    log = api.get(f"/tasks/{task_id}/jobs/{jobs[0]['id']}/log")
    assert log.status_code == 200 and "analyst: done" in log.text
    assert TOKEN not in log.text and "[redacted]" in log.text
    assert_error(api.get(f"/tasks/{task_id}/jobs/999999/log"), 404)
    other = api.post("/tasks", json={"repo": "app", "title": "Other"}, headers=AUTH).json()
    assert_error(api.get(f"/tasks/{other['id']}/jobs/{jobs[0]['id']}/log"), 404)


def test_the_command_line_stores_and_prints_descriptions_masked(
    repo_path: Path,
    store: Store,
    orch_home: Path,
    orch: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", TOKEN)
    added = orch("task", "add", "app", "Leak", "-d", LEAKY, "--json")
    assert added.code == 0, added.err
    task_id = json.loads(added.out)["id"]
    assert TOKEN not in added.out and json.loads(added.out)["description"] == MASKED
    for args in (("task", "show", task_id, "--json"), ("task", "list", "--json")):
        shown = orch(*args)
        assert shown.code == 0 and TOKEN not in shown.out and MASKED in shown.out, args
    assert store.get_task(task_id).description == LEAKY
    assert TOKEN not in store.get_artifact(task_id, "01-task.md").text
    assert TOKEN not in (orch_home / "tasks" / task_id / "01-task.md").read_text()


def test_a_secret_the_agent_prints_never_reaches_the_log_on_disk(
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A secret of the agents' environment, printed whole and printed in two writes (so that
    # it reaches the log in two reads of the pipe): neither may be stored as it is.
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    agent = command_agent(
        tmp_path,
        monkeypatch,
        "import os, sys, time\n"
        "sys.stdin.read()\n"
        "key = os.environ['AWS_SECRET_ACCESS_KEY']\n"
        "print('whole:', key, flush=True)\n"
        "sys.stdout.write('split: ' + key[:17]); sys.stdout.flush(); time.sleep(0.3)\n"
        "print(key[17:], flush=True)\n"
        "open(os.environ['ORCH_ARTIFACT_PATH'], 'w').write('analysis_status: BLOCKED\\n')\n",
    )
    submit_task(store, orch_home, "app", "Print the key", "")
    drain(store, db_url, orch_home, agent_command=str(agent))
    logs = sorted((orch_home / "logs").rglob("*.log"))
    assert logs, "no job log was written"
    text = "".join(log.read_text() for log in logs)
    assert "whole: [redacted]" in text and "split: [redacted]" in text
    assert secret not in text and secret[:17] not in text
