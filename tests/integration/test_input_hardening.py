"""Bad input found by trying: one line and a 4xx or exit 2, never a traceback or a raw driver
message, and nothing half-made."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.errors import Conflict
from orchestrator.store import RepoSpec, Store
from tests.api_support import Serve, assert_error, server_factory
from tests.conftest import Run


@pytest.fixture
def serve(store: Store, db_url: str, orch_home: Path) -> Iterator[Serve]:
    with server_factory(store, db_url, orch_home) as start:
        yield start


def one_line_error(run: Run) -> str:
    assert run.code == 2 and run.out == "", run
    [line] = run.err.strip().splitlines()
    assert "Traceback" not in run.err
    return line


@pytest.mark.parametrize(
    "args",
    [
        ("task", "artifact", "abcd2345", "01-task.md", "--round", "99999999999999999999999"),
        ("gc", "--older-than", "99999999999999999d"),
        ("gc", "--older-than", "1e400d"),
    ],
)
def test_huge_numbers_on_the_command_line_are_one_line_errors(
    orch: Callable[..., Run], store: Store, args: tuple[str, ...]
) -> None:
    line = one_line_error(orch(*args))
    assert "--round" in line or "--older-than" in line


def test_a_repo_path_that_does_not_exist_is_400_and_registers_nothing(
    serve: Serve, store: Store, tmp_path: Path
) -> None:
    api = serve()
    missing = api.post("/repos", json={"name": "ghost", "path": str(tmp_path / "nowhere")})
    assert_error(missing, 400)
    assert "does not exist" in missing.json()["error"]
    assert store.list_repos() == []


@pytest.mark.parametrize("value", ["yes", 1, "true", None])
def test_self_must_be_a_json_boolean(
    serve: Serve, store: Store, make_repo: Callable[..., Path], value: object
) -> None:
    api = serve()
    body = {"name": "app", "path": str(make_repo("app")), "self": value}
    assert_error(api.post("/repos", json=body), 422)
    assert store.list_repos() == []


def test_one_working_copy_is_registered_under_one_name_only(
    serve: Serve, store: Store, make_repo: Callable[..., Path]
) -> None:
    api = serve()
    path = make_repo("app")
    assert api.post("/repos", json={"name": "app", "path": str(path)}).status_code == 201
    again = api.post("/repos", json={"name": "app2", "path": str(path / ".")})
    assert_error(again, 409)
    assert "already registered as 'app'" in again.json()["error"]
    assert [r.name for r in store.list_repos()] == ["app"]


def test_a_unique_violation_is_a_plain_conflict_without_the_drivers_text(store: Store) -> None:
    store.add_repo("app", RepoSpec(path="/srv/app", default_branch="main"))
    with pytest.raises(Conflict) as raised:
        store.add_repo("app", RepoSpec(path="/srv/other", default_branch="main"))
    message = str(raised.value)
    assert "duplicate key" not in message and "UNIQUE constraint" not in message, message
    assert "\n" not in message


def test_the_error_shape_holds_for_a_413(serve: Serve) -> None:
    api = serve(max_body_bytes=1024)
    big = api.post("/tasks", content=b"{" + b" " * 4096 + b"}", headers={"content-type": "x"})
    assert_error(big, 413)
