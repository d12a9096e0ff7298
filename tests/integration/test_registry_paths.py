"""A path the operating system refuses (too long, not ours to enter) is the user's error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.errors import InputError
from orchestrator.registry import RepoOptions, register_repo
from orchestrator.store import Store
from tests.conftest import Run

TOO_LONG = "/tmp/" + "a" * 300  # one name over NAME_MAX (255): ENAMETOOLONG


@pytest.mark.parametrize("path", [TOO_LONG, f"/tmp/{'b' * 300}/app", f"~/{'c' * 300}"])
def test_a_path_the_system_refuses_is_an_input_error_and_nothing_is_stored(
    store: Store, path: str
) -> None:
    with pytest.raises(InputError, match=r"^cannot use .*: File name too long$"):
        register_repo(store, "app", path, RepoOptions())
    assert store.list_repos() == []


def test_repo_add_with_a_path_too_long_exits_2_with_one_line(
    store: Store, orch: Callable[..., Run]
) -> None:
    added = orch("repo", "add", "app", TOO_LONG)
    assert added.code == 2, added
    assert added.err.startswith("error: cannot use /tmp/aaa") and added.err.count("\n") == 1
    assert "File name too long" in added.err and "Traceback" not in added.err
    assert store.list_repos() == []
