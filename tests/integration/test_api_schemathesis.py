"""Property-based: whatever a client sends, the API answers without a server error (SPEC 9).

schemathesis generates requests from /openapi.json, valid and invalid, for every operation,
against the real server with no token (so writes are exercised). Half of the requests name a
repo, task, artifact and job that exist, so the success paths run as well as the 404s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from orchestrator.api import create_app
from orchestrator.api.guard import service_token
from orchestrator.intake import submit_task
from orchestrator.registry import RepoOptions, register_repo
from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.api_server import running_app
from tests.helpers import raise_alert

EXAMPLES_PER_OPERATION = 40


@dataclass(frozen=True)
class Known:
    """Names that exist in the served database."""

    repo: str
    task_id: str
    alert_id: int
    job_id: int


@pytest.fixture
def served(make_repo: Callable[..., Path], db_url: str, orch_home: Path) -> Iterator[Any]:
    """The app with its generated token, one repo with one task and one alert; its base URL
    and the token."""
    config = load_settings(db_url=db_url, home=orch_home, api_token=None)
    store = open_store(config)
    register_repo(store, "app", make_repo("app"), RepoOptions())
    task = submit_task(store, orch_home, "app", "A task", "with a description")
    alert = raise_alert(store, "test", "an alert", task.id)
    known = Known("app", task.id, alert.id, store.task_jobs(task.id)[0].id)
    with running_app(create_app(config, store, cache_ttl_s=0)) as base_url:
        yield base_url, known, service_token(config)
    store.close()


def requests_for(operation: Any, known: Known) -> st.SearchStrategy[Any]:
    """Valid requests, invalid ones, and valid ones naming objects that exist."""
    names = {"task_id": known.task_id, "name": "01-task.md", "job_id": known.job_id}
    names["alert_id"] = known.alert_id
    existing = {p.name: names[p.name] for p in operation.path_parameters if p.name in names}
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=existing),
    )


def test_no_request_makes_the_api_answer_with_a_server_error(
    served: tuple[str, Known, str],
) -> None:
    base_url, known, token = served
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every documented endpoint is generated for
    server_errors: list[str] = []
    for operation in operations:

        @given(case=requests_for(operation, known), known_repo=st.booleans())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any, known_repo: bool) -> None:
            if known_repo and isinstance(case.body, dict) and "repo" in case.body:
                case.body["repo"] = known.repo  # so that POST /tasks can succeed
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, f"{response.status_code}: {case.as_curl_command()}"

        try:
            call()
        except AssertionError as exc:
            server_errors.append(f"{operation.label}: {exc}")
    assert server_errors == []
