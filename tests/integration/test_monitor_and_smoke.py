"""The post-deploy monitor and the test-runner's smoke check against a real local HTTP server."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.gates import GateStatus, run_gate
from orchestrator.pipeline.stages import Stage
from orchestrator.pipeline.verdicts import parse_verdict_keys
from orchestrator.proc import CancelToken
from orchestrator.runners import smoke
from orchestrator.runners.base import RunnerRequest
from orchestrator.runners.monitor import PostDeployMonitor
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store
from tests.helpers import unique_marker

GOOD_QUEUE = {
    "running": [],
    "queued": [],
    "deferred": [],
    "serial_gate": {"app": {"holder": None, "waiting": []}},
}


@dataclass
class Server:
    """A local HTTP server answering each path with a sequence of (status, body)."""

    url: str
    answers: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    delay_s: float = 0.0  # how long each answer takes
    endless_body: bool = False  # after the headers, a body that trickles on for ENDLESS_S

    def answer(self, path: str, *answers: tuple[int, str] | int) -> None:
        self.answers[path] = [(a, "{}") if isinstance(a, int) else a for a in answers]

    def next_answer(self, path: str) -> tuple[int, str]:
        self.hits.append(path)
        queued = self.answers.get(path)
        if not queued:
            return 404, '{"detail": "not found"}'
        return queued.pop(0) if len(queued) > 1 else queued[0]  # the last one repeats


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: the monitor reads its records, it never queries the database."""
    url = f"sqlite:///{tmp_path / 'db' / 'orch.db'}"
    monkeypatch.setenv("ORCH_DB_URL", url)
    return url


ENDLESS_S = 10.0


@pytest.fixture
def server() -> Iterator[Server]:
    lock = threading.Lock()
    state: dict[str, Server] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                status, body = state["server"].next_answer(self.path)
            time.sleep(state["server"].delay_s)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if state["server"].endless_body:
                self.end_headers()  # no length: the body runs until the connection closes
                self.trickle()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def trickle(self) -> None:
            until = time.monotonic() + ENDLESS_S
            try:
                while time.monotonic() < until:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass  # the client hung up: what a probe that only wants the status does

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state["server"] = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_url() -> str:
    """A URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the post-deploy monitor -------------------------------------------------------------------

MakeRequest = Callable[..., RunnerRequest]


@pytest.fixture
def make_request(
    store: Store, orch_home: Path, make_repo: Callable[..., Path], tmp_path: Path
) -> Iterator[MakeRequest]:
    """Build a monitor request for a real task whose repo has the given health URL."""
    store.add_repo("app", RepoSpec(path=str(make_repo("app")), default_branch="main"))
    task = submit_task(store, orch_home, "app", "Add a flag", "")
    job = store.task_jobs(task.id)[0]
    tokens: list[CancelToken] = []

    def make(health_url: str | None, window_s: float = 0.6) -> RunnerRequest:
        repo = store.update_repo("app", RepoSpec(health_url=health_url or ""))
        tokens.append(CancelToken())
        return RunnerRequest(
            task=task,
            repo=repo,
            job=job,
            settings=load_settings(monitor_window_s=window_s, monitor_interval_s=0.2),
            artifact_path=tmp_path / "17-monitor-report.md",
            log_path=tmp_path / "monitor.log",
            cancel=tokens[-1],
            on_start=lambda started: None,
            marker=unique_marker(),
        )

    yield make
    for token in tokens:
        token.close()


def probe_rows(report: str) -> list[str]:
    """The status column of every probe row of the report's table."""
    return re.findall(r"^\| [\d.]+s \| ([^|]+?) \|", report, flags=re.MULTILINE)


def test_all_healthy_answers_are_healthy(server: Server, make_request: MakeRequest) -> None:
    server.answer("/health", 200)

    outcome = PostDeployMonitor().run(make_request(f"{server.url}/health"))

    assert outcome.is_verdict and not outcome.cancelled
    report = outcome.artifact
    assert report is not None
    assert parse_verdict_keys(report)["monitor_status"] == ("HEALTHY",)
    assert parse_verdict_keys(report)["producer"] == ("post-deploy-monitor",)
    assert run_gate(Stage.POST_DEPLOY, report).passed
    rows = probe_rows(report)
    assert len(rows) >= 3 and set(rows) == {"200"}
    assert len(rows) == server.hits.count("/health")
    assert f"{len(rows)} probes, 0 failed" in report


def test_one_error_answer_in_the_window_is_unhealthy(
    server: Server, make_request: MakeRequest
) -> None:
    server.answer("/health", 200, 500, 200)

    outcome = PostDeployMonitor().run(make_request(f"{server.url}/health"))

    report = outcome.artifact
    assert report is not None
    keys = parse_verdict_keys(report)
    assert (keys["monitor_status"], keys["failure_kind"]) == (("UNHEALTHY",), ("unhealthy",))
    gate = run_gate(Stage.POST_DEPLOY, report)
    assert gate.status is GateStatus.FAILED
    rows = probe_rows(report)
    assert rows[:2] == ["200", "500"] and rows.count("500") == 1
    assert f"{len(rows)} probes, 1 failed" in report


def test_nothing_listening_is_unhealthy(closed_url: str, make_request: MakeRequest) -> None:
    outcome = PostDeployMonitor().run(make_request(f"{closed_url}/health"))

    report = outcome.artifact
    assert report is not None
    assert parse_verdict_keys(report)["monitor_status"] == ("UNHEALTHY",)
    assert run_gate(Stage.POST_DEPLOY, report).status is GateStatus.FAILED
    rows = probe_rows(report)
    assert rows and set(rows) == {"no answer"}
    assert "ConnectError" in report


def test_a_slow_service_cannot_stretch_the_watch_past_its_window(
    server: Server, make_request: MakeRequest
) -> None:
    # Four probes are due (0, 0.2, 0.4 and 0.6 s), each answered after 1 s. Waiting for all of
    # them would take 4 s; no probe starts more than an interval after the window ends.
    server.answer("/health", 200)
    server.delay_s = 1.0
    started = time.monotonic()

    outcome = PostDeployMonitor().run(make_request(f"{server.url}/health", window_s=0.6))

    assert time.monotonic() - started < 3.0
    report = outcome.artifact
    assert report is not None
    assert parse_verdict_keys(report)["monitor_status"] == ("HEALTHY",)
    assert probe_rows(report) == ["200"] and server.hits == ["/health"]
    assert "3 of 4 probes did not start" in report


def test_a_health_body_that_never_ends_does_not_hold_a_probe(
    server: Server, make_request: MakeRequest
) -> None:
    server.answer("/health", 200)
    server.endless_body = True
    started = time.monotonic()

    outcome = PostDeployMonitor().run(make_request(f"{server.url}/health", window_s=0.2))

    assert time.monotonic() - started < ENDLESS_S / 2  # the status is enough; the body unread
    report = outcome.artifact
    assert report is not None
    assert parse_verdict_keys(report)["monitor_status"] == ("HEALTHY",)
    assert probe_rows(report) == ["200", "200"]


def test_no_health_url_is_skipped_and_passes(make_request: MakeRequest) -> None:
    outcome = PostDeployMonitor().run(make_request(None))

    report = outcome.artifact
    assert report is not None
    assert parse_verdict_keys(report)["monitor_status"] == ("SKIPPED",)
    assert run_gate(Stage.POST_DEPLOY, report).passed
    assert probe_rows(report) == []
    assert "no health URL" in report


def test_cancel_ends_the_watch_early(server: Server, make_request: MakeRequest) -> None:
    server.answer("/health", 200)
    request = make_request(f"{server.url}/health", window_s=30.0)
    canceller = threading.Timer(0.3, request.cancel.cancel)
    started = time.monotonic()
    canceller.start()
    try:
        outcome = PostDeployMonitor().run(request)
    finally:
        canceller.cancel()
        canceller.join()

    assert outcome.cancelled
    assert not outcome.is_verdict
    assert time.monotonic() - started < 5
    assert server.hits.count("/health") >= 1


# --- the smoke check --------------------------------------------------------------------------


def serve_good_api(server: Server, queue: object = GOOD_QUEUE) -> None:
    server.answer("/health", (200, json.dumps({"status": "ok", "version": "1.0"})))
    server.answer("/status", (200, json.dumps({"determinization": {}})))
    server.answer("/queue", (200, json.dumps(queue)))


@pytest.mark.parametrize("suffix", ["", "/"])
def test_smoke_check_of_a_good_api_passes(server: Server, suffix: str) -> None:
    serve_good_api(server)

    result = smoke.check(server.url + suffix)

    assert (result.ok, result.unreachable) == (True, False)
    assert result.summary.startswith("Smoke check passed")
    assert sorted(server.hits) == ["/health", "/queue", "/status"]


@pytest.mark.parametrize(
    ("queue", "problem"),
    [
        ({"running": [], "queued": []}, "no serial_gate"),
        ({"serial_gate": {"app": {"holder": None}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"holder": 3, "waiting": []}}}, "holder is not a task id"),
    ],
)
def test_smoke_check_fails_on_a_queue_that_breaks_the_contract(
    server: Server, queue: object, problem: str
) -> None:
    serve_good_api(server, queue)

    result = smoke.check(server.url)

    assert (result.ok, result.unreachable) == (False, False)
    assert result.summary.startswith("Smoke check FAILED") and problem in result.summary


def test_smoke_check_fails_when_queue_is_not_json(server: Server) -> None:
    serve_good_api(server)
    server.answer("/queue", (200, "<html>oops</html>"))

    result = smoke.check(server.url)

    assert (result.ok, result.unreachable) == (False, False)
    assert "did not answer JSON" in result.summary


@pytest.mark.parametrize("path", ["/health", "/status", "/queue"])
def test_smoke_check_fails_on_an_error_status(server: Server, path: str) -> None:
    serve_good_api(server)
    server.answer(path, (500, '{"detail": "boom"}'))

    result = smoke.check(server.url)

    assert (result.ok, result.unreachable) == (False, False)
    assert f"GET {path} answered 500" in result.summary


def test_smoke_check_of_nothing_listening_is_unreachable(closed_url: str) -> None:
    result = smoke.check(closed_url)

    assert (result.ok, result.unreachable) == (False, True)
    assert closed_url in result.summary
