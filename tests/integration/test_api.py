"""The HTTP API behind a real server: tasks, artifacts, repos, alerts and security (SPEC 9, 13,
15). /status, /queue and /metrics: test_api_documents.py; secrets: test_api_secrets.py."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

import orchestrator
from orchestrator.api import create_app
from orchestrator.pipeline.stages import Stage
from orchestrator.store import Store
from orchestrator.store.engine import make_engine
from tests.api_server import running_app
from tests.api_support import (
    TOKEN,
    Serve,
    add_app_repo,
    assert_error,
    create,
    drain,
    server_factory,
    settings_for,
)
from tests.helpers import raise_alert


@pytest.fixture
def serve(store: Store, db_url: str, orch_home: Path) -> Iterator[Serve]:
    with server_factory(store, db_url, orch_home) as start:
        yield start


@pytest.fixture
def api(serve: Serve) -> httpx.Client:
    return serve()


@pytest.fixture
def repo_path(make_repo: Callable[..., Path], store: Store) -> Path:
    return add_app_repo(make_repo, store)


def test_health_reports_version_commit_start_time_database_and_uptime(api: httpx.Client) -> None:
    health = api.get("/health")
    assert health.status_code == 200
    body = health.json()
    keys = {"status", "version", "commit", "started_at", "database", "worker", "uptime_s"}
    assert set(body) == keys
    assert body["status"] == "ok" and body["database"] is True and body["worker"] is None
    assert body["version"] == orchestrator.__version__
    assert body["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", body["commit"])
    assert datetime.fromisoformat(body["started_at"]).tzinfo is not None
    assert isinstance(body["uptime_s"], int | float) and body["uptime_s"] >= 0


def test_health_is_503_degraded_and_reads_are_json_503_when_the_database_is_unreachable(
    orch_home: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://orch@127.0.0.1:{port}/orch?connect_timeout=2"
    store = Store(make_engine(url))
    app = create_app(settings_for(url, orch_home), store, cache_ttl_s=0)
    with running_app(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as api:
        health = api.get("/health")
        assert health.status_code == 503
        assert (health.json()["status"], health.json()["database"]) == ("degraded", False)
        for path in ("/status", "/queue", "/tasks"):
            response = api.get(path)
            assert response.status_code == 503 and "database" in response.json()["error"]
    store.close()


def test_health_is_503_degraded_while_the_services_worker_cannot_run_jobs(
    store: Store, db_url: str, orch_home: Path
) -> None:
    problem: list[str] = ["the worker is not running (see its log)"]
    app = create_app(
        settings_for(db_url, orch_home),
        store,
        cache_ttl_s=0,
        worker_problem=lambda: problem[0] if problem else None,
    )
    with running_app(app) as base_url:
        health = httpx.get(f"{base_url}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["database"] is True
        assert health.json()["worker"] == problem[0]
        problem.clear()
        assert httpx.get(f"{base_url}/health", timeout=10).json()["status"] == "ok"


def test_create_task_answers_201_with_the_task_its_intake_event_and_its_first_artifact(
    repo_path: Path, api: httpx.Client
) -> None:
    task = create(api, "  Add   a feature ", "make it so")
    assert re.fullmatch(r"[a-z0-9]{8}", task["id"])
    assert task["title"] == "Add a feature" and task["description"] == "make it so"
    assert (task["repo"], task["stage"], task["state"]) == ("app", "analysis", "active")
    assert task["artifacts"] == ["01-task.md"]
    [intake] = task["events"]
    assert (intake["from_stage"], intake["to_stage"]) == (None, "analysis")
    assert intake["producer"] == "intake" and task["round"] == 1
    assert api.get(f"/tasks/{task['id']}").json() == task


def test_create_task_with_bad_input_is_a_json_4xx(repo_path: Path, api: httpx.Client) -> None:
    for body in (
        {"repo": "nope", "title": "T"},
        {"repo": "app", "title": ""},
        {"repo": "app", "title": "   "},
        {"repo": "app", "title": "x" * 201},
        {"repo": "../etc", "title": "T"},
        {"repo": "app", "title": "T", "extra": 1},
        {"repo": "app", "title": "NUL \x00 in it"},  # PostgreSQL cannot store it: 4xx, not 503
        {"repo": "app", "title": "T", "description": "\x00"},
        {"title": "T"},
        [],
    ):
        assert_error(api.post("/tasks", json=body))
    assert_error(
        api.post("/tasks", content=b"{not json", headers={"content-type": "application/json"})
    )
    assert api.get("/tasks").json()["total"] == 0


def test_list_tasks_filters_by_state_stage_and_repo_and_paginates(
    repo_path: Path, api: httpx.Client
) -> None:
    ids = [create(api, f"Task {n}")["id"] for n in range(3)]
    assert api.post(f"/tasks/{ids[1]}/cancel").json()["state"] == "cancelled"

    def listed(**params: object) -> tuple[list[str], int]:
        page = api.get("/tasks", params=params).json()
        assert page["limit"] == params.get("limit", 100)
        assert page["offset"] == params.get("offset", 0)
        return [t["id"] for t in page["tasks"]], page["total"]

    assert listed() == (ids, 3)
    assert listed(limit=2) == (ids[:2], 3)
    assert listed(limit=2, offset=2) == (ids[2:], 3)
    assert listed(state="cancelled") == ([ids[1]], 1)
    assert listed(state="active", stage="analysis") == ([ids[0], ids[2]], 2)
    assert listed(stage="analysis") == (ids, 3)  # a cancelled task keeps its last stage
    assert listed(stage="review") == ([], 0)
    assert listed(repo="app", limit=1) == (ids[:1], 3)
    assert listed(repo="other") == ([], 0)
    for params in ({"state": "sleeping"}, {"stage": "done"}, {"limit": 0}, {"repo": "a\x00"}):
        assert_error(api.get("/tasks", params=params), 422)


def test_task_detail_lists_every_stage_move_oldest_first(
    fake_bin: Path, repo_path: Path, api: httpx.Client, store: Store, db_url: str, orch_home: Path
) -> None:
    task = create(api)
    drain(store, db_url, orch_home)
    detail = api.get(f"/tasks/{task['id']}").json()
    assert detail["state"] == "done"
    moves = [(e["from_stage"], e["to_stage"], e["producer"]) for e in detail["events"]]
    assert moves == [
        (None, "analysis", "intake"),
        ("analysis", "design", "analyst"),
        ("design", "development", "architect"),
        ("development", "review", "developer"),
        ("review", "testing", "reviewer"),
        ("testing", "deploy-staging", "test-runner"),
        ("deploy-staging", "done", "staging-runner"),  # no staging command: SKIPPED
    ]
    assert "13-test-report.md" in detail["artifacts"]


def test_artifacts_are_listed_served_byte_for_byte_and_rendered_with_html_escaped(
    repo_path: Path, api: httpx.Client, store: Store
) -> None:
    description = "Fix <script>alert('x')</script> & **bold**\r\ntrailing  \n"
    task = create(api, "Escape it", description)
    [version] = api.get(f"/tasks/{task['id']}/artifacts").json()
    assert (version["name"], version["round"], version["producer"]) == ("01-task.md", 1, "intake")
    stored = store.get_artifact(task["id"], "01-task.md").text
    assert version["size"] == len(stored)
    raw = api.get(f"/tasks/{task['id']}/artifacts/01-task.md")
    assert raw.status_code == 200 and raw.content == stored.encode()
    assert api.get(f"/tasks/{task['id']}/artifacts/01-task.md", params={"round": 1}).text == stored
    rendered = api.get(f"/tasks/{task['id']}/artifacts/01-task.md/rendered")
    assert rendered.headers["content-type"].startswith("text/html")
    assert "<h1>Escape it</h1>" in rendered.text and "<strong>bold</strong>" in rendered.text
    assert "<script>" not in rendered.text and "&lt;script&gt;" in rendered.text
    assert_error(api.get(f"/tasks/{task['id']}/artifacts/13-test-report.md"), 404)
    assert_error(api.get(f"/tasks/{task['id']}/artifacts/01-task.md", params={"round": 2}), 404)


def test_cancel_ends_a_task_once_and_resume_needs_a_blocked_task(
    fake_bin: Path, repo_path: Path, api: httpx.Client, store: Store, db_url: str, orch_home: Path
) -> None:
    active = create(api, "Active")
    assert_error(api.post(f"/tasks/{active['id']}/resume"), 409)
    cancelled = api.post(f"/tasks/{active['id']}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["state"], cancelled.json()["stage"]) == ("cancelled", "analysis")
    assert_error(api.post(f"/tasks/{active['id']}/cancel"), 409)

    stuck = create(api, "Stuck")
    drain(store, db_url, orch_home, agent_command="no-such-agent-cli {role}")
    assert api.get(f"/tasks/{stuck['id']}").json()["state"] == "blocked"
    resumed = api.post(f"/tasks/{stuck['id']}/resume")
    assert resumed.status_code == 200
    assert (resumed.json()["state"], resumed.json()["reason"]) == ("active", None)
    assert_error(api.post("/tasks/zzzzzzzz/cancel"), 404)


def test_retry_needs_a_failed_task_and_gives_it_a_fresh_round_with_its_review(
    fake_bin: Path,
    repo_path: Path,
    api: httpx.Client,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "2")  # rounds 1 and 2 are rejected
    task = create(api, "Rejected")
    assert_error(api.post(f"/tasks/{task['id']}/retry"), 409)
    drain(store, db_url, orch_home, max_dev_retries=0)
    assert api.get(f"/tasks/{task['id']}").json()["state"] == "failed"
    retried = api.post(f"/tasks/{task['id']}/retry")
    assert retried.status_code == 200, retried.text
    detail = retried.json()
    assert (detail["state"], detail["stage"], detail["round"]) == ("active", "development", 2)
    prompt = orch_home / "tasks" / task["id"] / "prompt-developer-r2.txt"
    # The fresh budget is ORCH_MAX_DEV_RETRIES again (0 here): round 2's rejection fails it.
    drain(store, db_url, orch_home, max_dev_retries=0)
    failed = api.get(f"/tasks/{task['id']}").json()
    assert (failed["state"], failed["round"]) == ("failed", 2)
    assert "since its retry in round 2" in failed["reason"]
    assert "11-code-review.md" in prompt.read_text() and "CHANGES_REQUESTED" in prompt.read_text()
    assert api.post(f"/tasks/{task['id']}/retry").status_code == 200
    drain(store, db_url, orch_home, max_dev_retries=0)
    assert api.get(f"/tasks/{task['id']}").json()["state"] == "done"
    assert_error(api.post(f"/tasks/{task['id']}/retry"), 409)
    assert_error(api.post("/tasks/zzzzzzzz/retry"), 404)


def test_approve_and_reject_need_a_stage_that_waits_for_a_person(
    fake_bin: Path,
    make_repo: Callable[..., Path],
    serve: Serve,
    store: Store,
    db_url: str,
    orch_home: Path,
) -> None:
    add_app_repo(make_repo, store, skip_stages=frozenset({Stage.DEPLOY_STAGING}))
    api = serve(deploy_finalizer_enabled=False)  # deploy: nothing but a person produces it
    task = create(api, "Deployed by hand")
    assert_error(api.post(f"/tasks/{task['id']}/approve", json={}), 409)
    drain(store, db_url, orch_home, deploy_finalizer_enabled=False)
    waiting = api.get(f"/tasks/{task['id']}").json()
    assert (waiting["state"], waiting["stage"], waiting["waits_for"]) == (
        "blocked",
        "deploy",
        "person",
    )
    assert_error(api.post(f"/tasks/{task['id']}/resume"), 409)
    assert_error(api.post(f"/tasks/{task['id']}/reject", json={}), 422)
    assert_error(api.post(f"/tasks/{task['id']}/reject", json={"reason": ""}), 422)
    # A reason that reads like a verdict line is quoted, never taken for the verdict.
    reason = "Not yet:\ndeploy_status: DEPLOYED"
    rejected = api.post(f"/tasks/{task['id']}/reject", json={"reason": reason})
    assert rejected.status_code == 200, rejected.text
    # A failed deploy blocks (the stage table): it still waits for a person.
    assert (rejected.json()["state"], rejected.json()["waits_for"]) == ("blocked", "person")
    assert rejected.json()["events"][-1]["verdict"] == "FAILED"  # not INVALID
    approved = api.post(f"/tasks/{task['id']}/approve", json={"note": "Shipped at 10:00"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["stage"]) == ("active", "post-deploy")
    assert approved.json()["waits_for"] is None
    log = api.get(f"/tasks/{task['id']}/artifacts/16-deploy-log.md").text
    assert "deploy_status: DEPLOYED" in log and "Shipped at 10:00" in log


def test_repos_are_listed_and_registered_and_a_non_git_path_is_refused(
    make_repo: Callable[..., Path], api: httpx.Client, tmp_path: Path
) -> None:
    path = make_repo("web")
    created = api.post("/repos", json={"name": "web", "path": str(path), "skip_stages": ["deploy"]})
    assert created.status_code == 201, created.text
    repo = created.json()
    assert (repo["name"], repo["path"], repo["default_branch"]) == ("web", str(path), "main")
    assert (repo["skip_stages"], repo["self"]) == (["deploy"], False)
    assert api.get("/repos").json() == [repo]
    assert_error(api.post("/repos", json={"name": "web", "path": str(path)}), 409)
    assert_error(api.post("/repos", json={"name": "plain", "path": str(tmp_path)}))
    assert_error(api.post("/repos", json={"name": "home", "path": "~no-such-user/app"}), 422)
    too_long = api.post("/repos", json={"name": "long", "path": "/tmp/" + "a" * 300})
    assert_error(too_long, 400)
    assert "File name too long" in too_long.json()["error"]
    assert len(too_long.json()["error"]) < 200  # one line, not the whole path
    assert_error(api.post("/repos", json={"name": "../up", "path": str(path)}), 422)
    assert_error(api.post("/repos", json={"name": "x", "path": str(path), "skip_stages": ["y"]}))
    for field in ("path", "default_branch", "test_command"):
        body = {"name": "nul", "path": str(path), field: f"{path if field == 'path' else 'x'}\x00"}
        assert_error(api.post("/repos", json=body), 422)
    assert [r["name"] for r in api.get("/repos").json()] == ["web"]


def test_alerts_are_listed_and_acknowledged(api: httpx.Client, store: Store) -> None:
    alert = raise_alert(store, "no_runner", "deploy needs a person")
    listed = api.get("/alerts").json()
    assert [(a["id"], a["kind"], a["message"]) for a in listed] == [
        (alert.id, "no_runner", "deploy needs a person")
    ]
    assert len(api.get("/alerts", params={"open": "true"}).json()) == 1
    acked = api.post(f"/alerts/{alert.id}/ack")
    assert acked.status_code == 200 and acked.json()["acknowledged_at"] is not None
    assert api.get("/alerts", params={"open": "true"}).json() == []
    assert_error(api.post("/alerts/999999/ack"), 404)
    assert_error(api.post("/alerts/0/ack"), 422)
    assert_error(api.post(f"/alerts/{2**31}/ack"), 422)  # beyond an id column: not a 503


def test_every_write_needs_the_bearer_header_and_reads_stay_open_on_loopback(
    repo_path: Path, make_repo: Callable[..., Path], serve: Serve, store: Store
) -> None:
    api = serve(api_token=TOKEN, authenticated=False)
    good = {"Authorization": f"Bearer {TOKEN}"}
    bad_headers = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
    alert = raise_alert(store, "test", "an alert")
    writes = [
        ("/tasks", {"repo": "app", "title": "T"}),
        ("/repos", {"name": "web", "path": str(make_repo("web"))}),
        (f"/alerts/{alert.id}/ack", None),
    ]
    for path, body in writes:
        for headers in bad_headers:
            refused = api.post(path, json=body, headers=headers)
            assert_error(refused, 401)
            assert refused.headers["www-authenticate"] == "Bearer"
        assert api.post(path, json=body, headers=good).status_code in (200, 201)
    task_id = api.get("/tasks").json()["tasks"][0]["id"]
    for action in ("cancel", "resume"):
        for headers in bad_headers:
            assert_error(api.post(f"/tasks/{task_id}/{action}", headers=headers), 401)
    assert api.post(f"/tasks/{task_id}/cancel", headers=good).status_code == 200
    for path in ("/health", "/status", "/queue", "/tasks", f"/tasks/{task_id}", "/repos"):
        assert api.get(path).status_code == 200, path
    assert api.get("/alerts").status_code == 200 and api.get("/metrics").status_code == 200


def test_path_like_or_malformed_ids_are_a_json_4xx(api: httpx.Client) -> None:
    task = "/tasks/abcdefgh"
    for path in (
        *("/tasks/..%2F..", "/tasks/..%2F..%2Fetc%2Fpasswd", "/tasks/../../etc/passwd"),
        *("/tasks/ABC", "/tasks/abc", "/tasks/" + "a" * 300, "/tasks/abcd%00"),
        *(f"{task}/artifacts/..%2F..%2Forch.db", f"{task}/artifacts/01-task.md%2F.."),
        *(f"{task}/artifacts/TASK.md/rendered", f"{task}/jobs/-1/log", f"{task}/jobs/abc/log"),
        f"{task}/jobs/99999999999999999999999/log",
    ):
        assert_error(api.get(path))
        assert_error(api.post(f"{path}/cancel"))


def test_unknown_routes_and_wrong_methods_are_json_4xx(api: httpx.Client) -> None:
    assert_error(api.get("/no-such-page"), 404)
    assert_error(api.delete("/tasks"), 405)
    assert_error(api.put("/health"), 405)
    assert_error(api.get("/tasks/abcdefgh/cancel"), 405)
    assert_error(api.post("/tasks/abcdefgh/cancel", params={"x": "../"}), 404)
