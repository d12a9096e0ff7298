"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) over a real
`orch serve`: a task submitted through the API moves across the board without a reload."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import ORCH_EXE
from tests.serve_support import CHROMIUM, auth_from, free_port, require_chromium

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SKIPPED = ["deploy", "post-deploy"]
ROLES = ("analyst", "architect", "developer", "reviewer", "tester", "deployer")
ANALYSIS = """
# Analysis of the dashboard task

The board must show this task moving.

analysis_status: READY
"""

# Records every column each card is seen in (every swap of the board is a DOM mutation).
RECORDER = """() => {
  window.__columns = {};
  const look = () => {
    for (const card of document.querySelectorAll("[data-task]")) {
      const seen = (window.__columns[card.dataset.task] ??= []);
      const column = card.closest("[data-column]").dataset.column;
      if (seen[seen.length - 1] !== column) seen.push(column);
    }
  };
  new MutationObserver(look).observe(document.body, {childList: true, subtree: true});
  look();
}"""


@dataclass(frozen=True)
class Server:
    """A running `orch serve`."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def server(tmp_path: Path, orch_home: Path) -> Iterator[Server]:
    """A real `orch serve` (API and worker) with scripted agents that take 0.6 s each."""
    require_chromium()
    scenario = tmp_path / "scenario.toml"
    steps = []
    for role in ROLES:
        step = f'[[steps]]\nrole = "{role}"\nsleep = 0.6\n'
        if role == "analyst":
            step += f"artifact = '''{ANALYSIS}'''\n"
        steps.append(step)
    scenario.write_text("\n".join(steps))
    port = free_port()
    env = {
        **os.environ,
        "ORCH_HOME": str(orch_home),
        "ORCH_AGENT_BACKEND": "scripted",
        "ORCH_AGENT_SCENARIO": str(scenario),
        "ORCH_TEST_RUNNER_ENABLED": "false",
    }
    running = start(env, tmp_path / "serve.log", port)
    try:
        yield running
    finally:
        stop(running)


def start(env: dict[str, str], log: Path, port: int) -> Server:
    """`orch serve` on `port` with `env`, its output in `log`, once /health answers."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ORCH_EXE, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    running = Server(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(running)
            pytest.fail(f"orch serve did not answer /health: {running.output()}")
        try:
            if httpx.get(f"{running.url}/health", timeout=1).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def stop(server: Server) -> float:
    """SIGTERM the server and wait for it to exit; how long it took."""
    started = time.monotonic()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)
        pytest.fail(f"orch serve did not stop on SIGTERM: {server.output()}")
    # Uvicorn re-raises the SIGTERM it caught once it has shut down: -15 is a clean stop too.
    assert code in (0, -signal.SIGTERM), f"orch serve exited with {code}: {server.output()}"
    return time.monotonic() - started


def wait_for_column(
    page: Page, task_id: str, column: str | tuple[str, ...], timeout_s: float = 15
) -> None:
    """Until the recorder has seen the task's card in `column` (one of them, for a tuple)."""
    wanted = [column] if isinstance(column, str) else list(column)
    page.wait_for_function(
        "([task, wanted]) => (window.__columns[task] || []).some(c => wanted.includes(c))",
        arg=[task_id, wanted],
        timeout=timeout_s * 1000,
    )


@pytest.mark.slow
def test_a_task_moves_across_the_board_live_and_its_page_shows_artifacts(
    server: Server, make_repo: Callable[..., Path], orch_home: Path
) -> None:
    base_url = server.url
    headers = auth_from(orch_home)
    with (
        httpx.Client(base_url=base_url, timeout=10, headers=headers) as api,
        sync_playwright() as playwright,
    ):
        repo = {"name": "app", "path": str(make_repo("app")), "skip_stages": SKIPPED}
        assert api.post("/repos", json=repo).status_code == 201
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base_url}/")
            page.wait_for_selector("#live-status.ok")  # the event stream is open
            page.evaluate("window.__noReload = 1")
            page.evaluate(RECORDER)

            created = api.post("/tasks", json={"repo": "app", "title": "Show the board moving"})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]

            wait_for_column(page, task_id, "analysis")
            wait_for_column(page, task_id, ("design", "development", "review", "testing"))
            wait_for_column(page, task_id, "done", timeout_s=30)
            seen = page.evaluate("window.__columns")[task_id]
            assert seen[0] == "analysis" and seen[-1] == "done" and len(seen) >= 3, seen
            assert page.locator(f'[data-column="done"] [data-task="{task_id}"]').is_visible()
            assert page.evaluate("window.__noReload") == 1  # never reloaded
            chart = page.locator("svg.bars")
            assert chart.locator("g.bar.agent").count() >= 1  # the scripted agents' verdicts
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-board.png"), full_page=True)

            page.click(f'[data-task="{task_id}"] a.card-title')
            page.wait_for_url(f"**/ui/tasks/{task_id}")
            analysis = page.locator('[data-artifact="02-analysis.md"] .markdown')
            assert analysis.locator("h1").inner_text() == "Analysis of the dashboard task"
            assert "analysis_status: READY" in analysis.inner_text()
            assert page.locator(".timeline tr.outcome-passed").count() >= 5
            assert page.locator('a[href*="/jobs/"][href$="/log"]').count() >= 1
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()

    # An open event stream must not hold the server's shutdown (uvicorn waits for open
    # responses): the stream sees the server stopping and ends.
    with (
        httpx.Client(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/ui/events") as stream,
    ):
        lines = stream.iter_lines()  # kept: dropping it would close the connection
        assert next(line for line in lines if line.startswith("event:")) == "event: change"
        assert stop(server) < 10
    assert "Traceback" not in server.output()
