"""Working from the dashboard in a real browser (Debian's Chromium, Playwright) over a real
`orch serve` with a real agent process: a task is submitted from the board, its running
agent's lines show up on its page as the agent prints them, its branch's diff is read, and
it is cancelled from its page; a stage only a person can pass is rejected, retried and
approved from its page. Screenshots at
1280×800 are saved for review, and no page overflows horizontally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.acceptance.test_dashboard_browser import ARTIFACTS, CHROMIUM_ARGS, Server, start, stop
from tests.conftest import ORCH_EXE
from tests.serve_support import CHROMIUM, auth_from, free_port, require_chromium

VIEWPORT = {"width": 1280, "height": 800}
REASON = "The page is blank in production"
# The analyst prints three lines 1.5 s apart (noting when), the developer commits a change,
# and the reviewer takes its time, so the task waits in review to be looked at and cancelled.
AGENT = """\
import os, subprocess, sys, time
prompt = sys.stdin.read()
role, artifact = os.environ["ORCH_ROLE"], os.environ["ORCH_ARTIFACT_PATH"]
printed = os.environ["AGENT_PRINTED"]
quick = "By hand" in prompt  # a task for the repo whose watch only a person can give
if role == "analyst" and not quick:
    for n in range(3):
        print(f"analyst line {n}", flush=True)
        with open(printed, "a") as out:
            out.write(f"analyst line {n} {time.time()}\\n")
        time.sleep(1.5)
if role == "developer":
    n = os.environ["ORCH_ROUND"]
    open("feature.txt", "w").write(f"DIFF-MARKER: the new feature, round {n}\\n")
    subprocess.run(["git", "add", "feature.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "Add the feature"], check=True)
if role == "reviewer" and not quick:
    print("reviewer: reading the change", flush=True)
    time.sleep(120)
keys = {"analyst": "analysis_status: READY", "architect": "design_status: READY",
        "developer": "dev_status: DONE", "reviewer": "review_verdict: APPROVED"}
open(artifact, "w").write(f"# {role}\\n\\n{keys[role]}\\n")
"""
# When each line of the live log first appeared in the page, by the browser's clock.
LOG_RECORDER = """() => {
  window.__seen = {};
  const pane = document.getElementById("job-log");
  const look = () => {
    for (const line of pane.textContent.split("\\n")) {
      if (line && !(line in window.__seen)) window.__seen[line] = Date.now() / 1000;
    }
  };
  new MutationObserver(look).observe(pane, {childList: true, characterData: true, subtree: true});
  look();
}"""
# Nothing wider than the window, and no table cut at its container's edge (a clipped last
# column does not widen the page).
NO_OVERFLOW = """() => document.documentElement.scrollWidth <= window.innerWidth &&
  [...document.querySelectorAll("table")].every((table) => {
    const box = table.parentElement.getBoundingClientRect();
    return table.getBoundingClientRect().right <= Math.min(box.right, window.innerWidth) + 1;
  })"""


@pytest.fixture
def server(
    tmp_path: Path, orch_home: Path, make_repo: Callable[..., Path]
) -> Iterator[tuple[Server, Path]]:
    """A real `orch serve` (API and worker) whose agent is AGENT, and a registered repo."""
    require_chromium()
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    printed = tmp_path / "printed.log"
    port = free_port()
    env = {
        **os.environ,
        "ORCH_HOME": str(orch_home),
        "ORCH_AGENT_BACKEND": "command",
        "ORCH_AGENT_COMMAND": f"{sys.executable} {agent}",
        "AGENT_PRINTED": str(printed),
        "ORCH_POST_DEPLOY_MONITOR_ENABLED": "false",
    }
    running = start(env, tmp_path / "serve.log", port)
    try:
        repo = {"name": "app", "path": str(make_repo("app")), "skip_stages": ["deploy"]}
        added = httpx.post(f"{running.url}/repos", json=repo, headers=auth_from(orch_home))
        assert added.status_code == 201, added.text
        # Its post-deploy watch waits for a person: the monitor is off and nothing else can.
        hand = {
            "name": "hand",
            "path": str(make_repo("hand")),
            "test_command": "true",
            "skip_stages": ["design", "deploy-staging", "deploy"],
        }
        added = httpx.post(f"{running.url}/repos", json=hand, headers=auth_from(orch_home))
        assert added.status_code == 201, added.text
        yield running, printed
    finally:
        stop(running)


def tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Press Tab from the top of the page until `selector` has the focus, as a keyboard user
    would; fails when it is never reached."""
    # Blurring alone leaves Chromium's Tab starting point at the last control used (a button
    # further down the page); focusing the page's first link puts it back at the top.
    page.evaluate("() => document.querySelector('a').focus()")
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    pytest.fail(f"{selector} cannot be reached with Tab")


def shot(page: Page, name: str) -> None:
    assert page.evaluate(NO_OVERFLOW), f"{name} overflows horizontally at 1280 px"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)


@pytest.mark.slow
def test_submit_follow_read_the_diff_and_cancel_from_the_dashboard(
    server: tuple[Server, Path], orch_home: Path
) -> None:
    running, printed = server
    token = (orch_home / "api-token").read_text().strip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # A confirm is accepted; a prompt (why a stage is rejected) is answered.
            page.on(
                "dialog",
                lambda dialog: dialog.accept(REASON if dialog.type == "prompt" else ""),
            )
            page.goto(f"{running.url}/?token={token}")  # the link orch serve prints
            page.wait_for_selector("#live-status.ok")
            shot(page, "board-empty")

            # From the keyboard: the title field, typed, and Enter submits the form.
            tab_to(page, "#new-task input[name=title]")
            page.keyboard.type("Show the work live")
            page.keyboard.press("Enter")
            page.wait_for_url("**/ui/tasks/*")
            task_id = page.url.rsplit("/", 1)[-1]
            page.evaluate(LOG_RECORDER)
            page.wait_for_function("() => 'analyst line 2' in window.__seen", timeout=30_000)
            seen = page.evaluate("window.__seen")
            for line in printed.read_text().splitlines():
                text, at = line.rsplit(" ", 1)
                assert seen[text] - float(at) < 1.0, (text, seen[text] - float(at))

            # In review, the developer's commit is on the branch: read it.
            page.wait_for_selector('[data-task-page][data-stage="review"]', timeout=30_000)
            page.wait_for_function(
                "() => document.getElementById('job-log').textContent.includes('reviewer')",
                timeout=15_000,
            )
            page.click("#changes summary")
            page.wait_for_selector("pre.diff")
            assert "DIFF-MARKER: the new feature" in page.inner_text("pre.diff")
            assert "Add the feature" in page.inner_text("#changes .commits")
            shot(page, "task")
            page.goto(f"{running.url}/ui/queue")  # with the reviewer's job running
            page.wait_for_selector('[data-list="running"] tbody tr')
            shot(page, "queue")
            page.goto(f"{running.url}/ui/tasks/{task_id}")
            page.wait_for_selector('[data-task-page][data-state="active"]')

            tab_to(page, 'button[data-action="cancel"]')
            page.keyboard.press("Enter")
            page.wait_for_selector('[data-task-page][data-state="cancelled"]', timeout=15_000)
            assert page.locator('button[data-action="cancel"]').is_hidden()
            page.goto(f"{running.url}/")
            page.wait_for_selector(f'[data-column="cancelled"] [data-task="{task_id}"]')
            shot(page, "board")

            # A watch only a person can give: rejected with a reason (the task fails),
            # retried, and approved in the new round; each from the keyboard.
            hand = httpx.post(
                f"{running.url}/tasks",
                json={"repo": "hand", "title": "By hand"},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["id"]
            page.goto(f"{running.url}/ui/tasks/{hand}")
            waiting = '[data-task-page][data-waits="person"][data-stage="post-deploy"]'
            page.wait_for_selector(waiting, timeout=30_000)
            assert page.locator('button[data-action="resume"]').is_hidden()
            shot(page, "task-waiting")
            for action, after in (
                ("reject", '[data-state="failed"]'),
                ("retry", '[data-state="active"]'),
                ("approve", '[data-state="done"]'),
            ):
                if action == "approve":
                    page.wait_for_selector(waiting, timeout=30_000)
                page.wait_for_selector(f'button[data-action="{action}"]', state="visible")
                tab_to(page, f'button[data-action="{action}"]')
                page.keyboard.press("Enter")
                page.wait_for_selector(f"[data-task-page]{after}", timeout=15_000)
                assert page.locator(f'button[data-action="{action}"]').is_hidden()
            assert errors == []
        finally:
            browser.close()
    shown = json.loads(
        subprocess.run(
            [ORCH_EXE, "task", "show", task_id, "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "ORCH_HOME": str(orch_home)},
            check=True,
        ).stdout
    )
    assert shown["state"] == "cancelled"
