"""What the HTTP API tests share: settings, a server factory, tasks made through the API."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from orchestrator.api import create_app
from orchestrator.api.guard import service_token
from orchestrator.pipeline.stages import Stage
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings, load_settings
from orchestrator.store import RepoSpec, Store
from tests.api_server import running_app

TOKEN = "s3cret-api-token"
NO_DEPLOY = frozenset({Stage.DEPLOY, Stage.POST_DEPLOY})
PASS = shlex.join(["python", "-c", "pass"])  # a test command that passes
RUNNER_KEYS = ("test_runner", "staging_runner", "deploy_finalizer", "post_deploy_monitor")
Serve = Callable[..., httpx.Client]


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    """The fake agent, and short back-offs and grace so that tests run fast."""
    agent = {"agent_backend": "command", "agent_command": "fake-agent {role}"}
    fast = {"defer_backoff_s": 0.05, "defer_backoff_max_s": 0.2, "kill_grace_s": 0.5}
    return load_settings(db_url=db_url, home=home, **{**agent, **fast, **overrides})


@contextmanager
def server_factory(store: Store, db_url: str, home: Path) -> Iterator[Serve]:
    """Factory: the API over the test's store, with settings overridden, behind a real server
    (uncached, so that every read sees the writes before it), and a client with its token."""
    with ExitStack() as stack:

        def start(*, authenticated: bool = True, **overrides: object) -> httpx.Client:
            settings = settings_for(db_url, home, **overrides)
            app = create_app(settings, store, cache_ttl_s=0)
            base_url = stack.enter_context(running_app(app))
            # Every write needs the token: the client carries it unless the test is about that.
            headers = auth_for(settings) if authenticated else {}
            return stack.enter_context(httpx.Client(base_url=base_url, timeout=10, headers=headers))

        yield start


def auth_for(settings: Settings) -> dict[str, str]:
    """The header that carries the API token of a server with these settings."""
    return {"Authorization": f"Bearer {service_token(settings)}"}


def add_app_repo(make_repo: Callable[..., Path], store: Store, **spec: object) -> Path:
    """The repo `app`: its suite passes (`python -c pass`), it has no deploy stages."""
    path = make_repo("app")
    values: dict[str, object] = {
        "path": str(path),
        "default_branch": "main",
        "skip_stages": NO_DEPLOY,
        "test_command": PASS,
        **spec,
    }
    store.add_repo("app", RepoSpec(**values))  # type: ignore[arg-type]
    return path


def create(api: httpx.Client, title: str = "Add a feature", description: str = "") -> dict:
    """A task submitted through POST /tasks (201 or the test fails)."""
    created = api.post("/tasks", json={"repo": "app", "title": title, "description": description})
    assert created.status_code == 201, created.text
    return created.json()


def drain(store: Store, db_url: str, home: Path, **overrides: object) -> None:
    """Run a real worker until no task can make progress."""
    assert Worker(store, settings_for(db_url, home, **overrides), drain=True).run() == 0


def assert_error(response: httpx.Response, status: int | None = None) -> None:
    """A 4xx whose body is `{"error": "<a message>"}`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert status is None or response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str) and response.json()["error"]
