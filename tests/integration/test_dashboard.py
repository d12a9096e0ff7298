"""The dashboard's pages, fragments, assets and event stream, over a live server."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from orchestrator.api import create_app, dashboard
from orchestrator.pipeline.stages import STAGE_ORDER
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Store
from tests.api_server import running_app
from tests.api_support import auth_for
from tests.helpers import raise_alert


@dataclass(frozen=True)
class Live:
    """A running server over the test's store, and a client for it."""

    client: httpx.Client
    store: Store
    settings: Settings
    base_url: str


@pytest.fixture
def live(store: Store, db_url: str, orch_home: Path) -> Iterator[Live]:
    settings = load_settings(db_url=db_url, home=orch_home)
    app = create_app(settings, store, cache_ttl_s=0)
    with (
        running_app(app) as base_url,
        httpx.Client(base_url=base_url, timeout=10, headers=auth_for(settings)) as client,
    ):
        yield Live(client, store, settings, base_url)


@pytest.fixture
def repo(live: Live, make_repo: Callable[..., Path]) -> str:
    body = {"name": "app", "path": str(make_repo("app")), "skip_stages": ["deploy"]}
    response = live.client.post("/repos", json=body)
    assert response.status_code == 201, response.text
    return "app"


def add_task(live: Live, title: str = "Add a feature", description: str = "Make it so.") -> str:
    response = live.client.post(
        "/tasks", json={"repo": "app", "title": title, "description": description}
    )
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


def columns(html: str) -> list[str]:
    return re.findall(r'data-column="([^"]+)"', html)


def test_the_board_has_a_column_per_stage_then_the_states(live: Live) -> None:
    page = live.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    expected = [s.value for s in STAGE_ORDER] + ["blocked", "done", "failed", "cancelled"]
    assert columns(page.text) == expected
    for link in ('href="/"', 'href="/ui/queue"', 'href="/ui/alerts"'):
        assert link in page.text
    assert "/static/dashboard.js" in page.text and "/static/dashboard.css" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    assert 'data-token="' in page.text
    assert "No verdicts yet." in page.text


def test_a_new_task_gets_a_card_in_the_analysis_column(live: Live, repo: str) -> None:
    task_id = add_task(live, title="Count the <b>widgets</b>")
    for url in ("/", "/ui/fragments/board"):
        html = live.client.get(url).text
        analysis = html.split('data-column="analysis"', 1)[1].split("data-column=", 1)[0]
        assert f'data-task="{task_id}"' in analysis
        assert f'href="/ui/tasks/{task_id}"' in analysis
        assert "Count the &lt;b&gt;widgets&lt;/b&gt;" in analysis
        assert "badge job-queued" in analysis
    fragment = live.client.get("/ui/fragments/board").text
    assert "<html" not in fragment and "<nav" not in fragment  # the inside only


def test_the_task_page_shows_timeline_jobs_and_rendered_artifacts(live: Live, repo: str) -> None:
    task_id = add_task(live, description="Some *emphasis* here.")
    page = live.client.get(f"/ui/tasks/{task_id}")
    assert page.status_code == 200
    html = page.text
    assert 'class="timeline"' in html and "submitted" in html and "→ analysis" in html
    assert 'data-artifact="01-task.md"' in html
    assert "<em>emphasis</em>" in html  # Markdown rendered on the server
    assert 'class="pill pill-current"' in html and 'class="pill pill-skipped"' in html
    assert "queued" in html  # the live job
    assert f'data-fragment="/ui/fragments/task/{task_id}"' in html
    fragment = live.client.get(f"/ui/fragments/task/{task_id}").text
    assert 'data-artifact="01-task.md"' in fragment and "<html" not in fragment


def test_the_task_page_links_job_logs(live: Live, repo: str) -> None:
    task_id = add_task(live)
    job = live.store.task_jobs(task_id)[0]
    log = live.settings.home / "logs" / "x.log"
    with live.store.engine.begin() as conn:  # a job with a log, as a worker leaves it
        conn.execute(
            text("UPDATE jobs SET log_path = :p, producer = 'analyst' WHERE id = :id"),
            {"p": str(log), "id": job.id},
        )
    html = live.client.get(f"/ui/tasks/{task_id}").text
    assert f'href="/tasks/{task_id}/jobs/{job.id}/log"' in html


def test_html_in_a_task_or_artifact_is_escaped(live: Live, repo: str) -> None:
    attack = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    task_id = add_task(live, title=f"Title {attack}", description=f"Body {attack}")
    for url in (f"/ui/tasks/{task_id}", f"/ui/fragments/task/{task_id}", "/"):
        html = live.client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;" in html, url
    assert re.findall(r"<script\b[^>]*>", live.client.get("/").text) == [
        '<script src="/static/dashboard.js" defer>'
    ]


def test_bad_task_ids_are_json_4xx(live: Live) -> None:
    for url in ("/ui/tasks/NOT-AN-ID", "/ui/fragments/task/x", "/ui/tasks/..%2F..%2Fetc"):
        response = live.client.get(url)
        assert 400 <= response.status_code < 500, url
        assert response.headers["content-type"] == "application/json" and response.json()["error"]
    missing = live.client.get("/ui/tasks/abcd1234")
    assert missing.status_code == 404 and "abcd1234" in missing.json()["error"]


def test_the_queue_shows_jobs_the_serial_gate_and_the_four_runners(live: Live, repo: str) -> None:
    task_id = add_task(live)
    for url in ("/ui/queue", "/ui/fragments/queue"):
        html = live.client.get(url).text
        queued = html.split('data-list="queued"', 1)[1].split('data-list="deferred"', 1)[0]
        assert f"/ui/tasks/{task_id}" in queued
        assert "Serial gate" in html and 'data-gate="app"' in html and "free" in html
        for key in ("test_runner", "staging_runner", "deploy_finalizer", "post_deploy_monitor"):
            assert f'data-runner="{key}"' in html, key


def test_alerts_are_listed_and_acknowledged(live: Live, repo: str) -> None:
    task_id = add_task(live)
    alert = raise_alert(live.store, "verdict", "analysis blocked: <no verdict>", task_id)
    html = live.client.get("/ui/alerts").text
    assert f'data-alert="{alert.id}"' in html and f'data-ack="{alert.id}"' in html
    assert "analysis blocked: &lt;no verdict&gt;" in html and 'id="api-token"' in html
    assert live.client.post(f"/alerts/{alert.id}/ack").status_code == 200
    fragment = live.client.get("/ui/fragments/alerts").text
    assert f'data-ack="{alert.id}"' not in fragment and "seen " in fragment


def test_static_assets_are_served_from_the_package(live: Live) -> None:
    script = live.client.get("/static/dashboard.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert "javascript" in script.headers["content-type"]
    style = live.client.get("/static/dashboard.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "@import" not in style.text and "url(" not in style.text  # no outside fonts
    assert live.client.get("/static/../app.py").status_code == 404
    schema = live.client.get("/openapi.json").json()
    assert not any(path == "/" or path.startswith("/ui") for path in schema["paths"])


def read_event(lines: Iterator[str]) -> tuple[str, str]:
    """The next event's name and data, keep-alive comments skipped."""
    name = data = ""
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
        elif line == "" and name:
            return name, data
    raise AssertionError("the stream ended")


def test_the_event_stream_announces_changes(live: Live, repo: str) -> None:
    with (
        httpx.Client(base_url=live.base_url, timeout=5) as client,
        client.stream("GET", "/ui/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        name, first = read_event(lines)  # the current token, at once
        page_token = re.search(r'data-token="([0-9a-f]+)"', live.client.get("/").text)
        assert name == "change" and page_token and page_token.group(1) == first
        add_task(live)
        name, second = read_event(lines)
        assert name == "change" and second != first
        raise_alert(live.store, "test", "look")
        assert read_event(lines)[1] not in (first, second)


def test_the_event_stream_keeps_alive_and_ends(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(dashboard, "STREAM_MAX_S", 1.5)
    started = time.monotonic()
    with live.client.stream("GET", "/ui/events") as stream:
        text = "".join(stream.iter_text())  # the stream ends by itself after STREAM_MAX_S
    assert time.monotonic() - started < 5
    assert text.startswith("retry: ") and text.count("event: change") == 1
    assert ": keep-alive" in text
