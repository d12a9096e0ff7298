"""No way in through a browser: a real `orch serve`, spoken to over HTTP and by a real browser.

A page the user visits can POST a form to the loopback API, and a DNS-rebinding page can reach
it under its own name; the API's writes run commands. These tests play the attacker: a
foreign Host, a cross-origin form submitted by Chromium, an oversized body without a token.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from playwright.sync_api import sync_playwright

from orchestrator.intake import submit_task
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store
from tests.acceptance.conftest import Serve
from tests.conftest import ORCH_EXE
from tests.serve_support import CHROMIUM, auth_from, require_chromium

MB = 1024 * 1024


@pytest.fixture
def task_id(orch_home: Path, make_repo: Callable[..., Path]) -> str:
    """A queued task the attacker would like to cancel (no worker runs it)."""
    store = open_store(load_settings())
    try:
        repo = make_repo("app")
        store.add_repo("app", RepoSpec(path=str(repo), default_branch="main"))
        return submit_task(store, orch_home, "app", "Keep me", "").id
    finally:
        store.close()


def state_of(base_url: str, task: str) -> str:
    return str(httpx.get(f"{base_url}/tasks/{task}", timeout=5).json()["state"])


def test_a_foreign_host_is_refused_and_the_token_is_always_on(
    serve: Serve, orch_home: Path, task_id: str
) -> None:
    _, base_url = serve("--no-worker")
    rebound = httpx.get(f"{base_url}/tasks", headers={"Host": "attacker.example"}, timeout=5)
    assert rebound.status_code == 403 and "ORCH_ALLOWED_HOSTS" in rebound.json()["error"]
    assert httpx.get(f"{base_url}/tasks", timeout=5).status_code == 200  # loopback reads

    anonymous = httpx.post(f"{base_url}/tasks/{task_id}/cancel", timeout=5)
    assert anonymous.status_code == 401
    assert (orch_home / "api-token").stat().st_mode & 0o077 == 0, "its owner's only"
    auth = auth_from(orch_home)
    assert httpx.post(f"{base_url}/tasks/{task_id}/cancel", headers=auth, timeout=5).is_success


def test_a_cross_origin_form_submitted_by_a_browser_changes_nothing(
    serve: Serve, orch_home: Path, task_id: str, tmp_path: Path
) -> None:
    require_chromium()
    _, base_url = serve("--no-worker")
    page_dir = tmp_path / "attacker"
    page_dir.mkdir()
    (page_dir / "index.html").write_text(
        f'<form id="f" method="POST" action="{base_url}/tasks/{task_id}/cancel">'
        '<input name="reason" value="pwned"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    with attacker_site(page_dir) as attacker_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page()
            with page.expect_response(lambda r: "/cancel" in r.url) as answered:
                page.goto(attacker_url)
            assert answered.value.status in (401, 403)
        finally:
            browser.close()
    assert state_of(base_url, task_id) == "active"


def test_an_oversized_body_without_a_token_is_refused_before_it_is_read(
    serve: Serve, orch_home: Path
) -> None:
    process, base_url = serve("--no-worker")
    server = psutil.Process(process.pid)
    before = server.memory_info().rss
    port = int(base_url.rsplit(":", 1)[1])

    status = raw_post(port, "/tasks", 10 * MB, headers="")
    assert status in (401, 413)
    # With the token, a body that does not say its size is cut off at the cap (1 MB).
    bearer = auth_from(orch_home)["Authorization"]
    chunked = raw_post(port, "/tasks", 10 * MB, headers=f"Authorization: {bearer}\r\n")
    assert chunked == 413
    assert server.memory_info().rss - before < 30 * MB


def test_on_a_public_bind_reads_need_the_token_and_a_short_token_is_refused(
    serve: Serve,
) -> None:
    token = "t" * 24
    _, base_url = serve("--host", "0.0.0.0", "--no-worker", env={"ORCH_API_TOKEN": token})
    assert httpx.get(f"{base_url}/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base_url}/tasks", headers=auth, timeout=5).status_code == 200
    # The dashboard's link with the token sets it as a cookie and drops it from the address.
    login = httpx.get(f"{base_url}/ui/tasks?token={token}", timeout=5)
    assert login.status_code == 303 and login.headers["location"] == "/ui/tasks"
    assert "HttpOnly" in login.headers["set-cookie"]

    refused = subprocess.run(
        [ORCH_EXE, "serve", "--no-worker"],
        env={**os.environ, "ORCH_API_TOKEN": "short "},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "16 characters" in line


def raw_post(port: int, path: str, size: int, headers: str) -> int:
    """POST `size` bytes in chunks (no Content-Length, so the server cannot refuse it up
    front); the status the server answered with, however far the body got."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < size:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: read what it said
        answer = conn.recv(4096).decode("latin-1")
    return int(answer.split(" ", 2)[1])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def attacker_site(folder: Path) -> Iterator[str]:
    """Another origin on this machine (another port) serving the attacker's page."""
    handler = functools.partial(_Quiet, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{site.server_address[1]}/index.html"
        finally:
            site.shutdown()
