"""`orch repo` and `orch task` commands, run in-process against both backends."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.store.migrate import HEAD_REVISION
from tests.conftest import Run
from tests.helpers import git

Orch = Callable[..., Run]


@pytest.fixture
def app_repo(orch: Orch, make_repo: Callable[..., Path], db_url: str) -> Path:
    path = make_repo("app")
    assert orch("repo", "add", "app", str(path)).code == 0
    return path


def test_repo_add_says_what_each_missing_command_means(
    orch: Orch, make_repo: Callable[..., Path]
) -> None:
    bare = orch("repo", "add", "app", str(make_repo("app")))
    assert bare.code == 0, bare.err
    assert "no staging command: staging is SKIPPED" in bare.err
    assert "no deploy command: the merge" in bare.err and "no health URL" in bare.err
    complete = orch(
        "repo", "set", "app", "--staging-command", "true", "--deploy-command", "true",
        "--skip-stages", "post-deploy",
    )  # fmt: skip
    assert complete.code == 0 and "no " not in complete.err, complete.err


def test_a_junit_path_outside_the_repo_is_refused_in_one_line(
    orch: Orch, make_repo: Callable[..., Path]
) -> None:
    path = make_repo("app")
    for bad in ("/tmp/junit.xml", "../junit.xml"):
        refused = orch("repo", "add", "app", str(path), "--junit-path", bad)
        assert refused.code == 2 and refused.err.count("\n") == 1, refused.err
        assert "--junit-path: expected a path inside the repo" in refused.err
    added = orch("repo", "add", "app", str(path), "--junit-path", "reports/junit.xml", "--json")
    assert added.code == 0 and '"junit_path": "reports/junit.xml"' in added.out


def test_default_branch_is_the_repos_current_branch(
    orch: Orch, make_repo: Callable[..., Path]
) -> None:
    path = make_repo("trunky", branch="trunk")
    result = orch("repo", "add", "trunky", str(path), "--json")
    assert json.loads(result.out)["default_branch"] == "trunk"


def test_detached_head_needs_an_explicit_default_branch(
    orch: Orch, make_repo: Callable[..., Path]
) -> None:
    path = make_repo("detached")
    git(path, "checkout", "-q", "--detach")
    refused = orch("repo", "add", "detached", str(path))
    assert refused.code == 2 and "--default-branch" in refused.err
    assert orch("repo", "add", "detached", str(path), "--default-branch", "main").code == 0


def test_subdirectory_path_registers_the_working_copy_root(
    orch: Orch, make_repo: Callable[..., Path]
) -> None:
    path = make_repo("nested", files={"src/app.py": "x = 1\n"})
    result = orch("repo", "add", "nested", str(path / "src"), "--json")
    assert json.loads(result.out)["path"] == str(path.resolve())


def test_repo_set_changes_only_what_is_given(orch: Orch, app_repo: Path) -> None:
    orch("repo", "set", "app", "--test-command", "make test", "--health-url", "http://h/health")
    changed = json.loads(orch("repo", "set", "app", "--skip-stages", "review", "--json").out)
    assert changed["test_command"] == "make test"
    assert changed["health_url"] == "http://h/health"
    assert changed["skip_stages"] == ["review"]
    cleared = json.loads(orch("repo", "set", "app", "--test-command", "", "--json").out)
    assert cleared["test_command"] is None and cleared["skip_stages"] == ["review"]


def test_repo_list_json_and_table(orch: Orch, app_repo: Path) -> None:
    assert [r["name"] for r in json.loads(orch("repo", "list", "--json").out)] == ["app"]
    table = orch("repo", "list").out
    assert "app" in table and "python -m pytest tests" in table


def test_only_one_repo_can_be_the_self_repo(
    orch: Orch, app_repo: Path, make_repo: Callable[..., Path]
) -> None:
    assert orch("repo", "set", "app", "--self").code == 0
    other = make_repo("other")
    refused = orch("repo", "add", "other", str(other), "--self")
    assert refused.code == 2 and "already the self repo" in refused.err
    assert orch("repo", "set", "app", "--no-self").code == 0
    assert orch("repo", "add", "other", str(other), "--self").code == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--health-url", "ftp://x", "http:// or https://"),
        ("--test-target", "../outside", "inside the repo"),
        ("--test-target", "/abs", "inside the repo"),
        ("--setup-command", "   ", "blank"),
    ],
)
def test_repo_set_refuses_bad_values(
    orch: Orch, app_repo: Path, option: str, value: str, message: str
) -> None:
    before = orch("repo", "list", "--json").out
    result = orch("repo", "set", "app", option, value)
    assert result.code == 2 and message in result.err
    assert orch("repo", "list", "--json").out == before


def test_unknown_repo_set_is_exit_2(orch: Orch, db_url: str) -> None:
    result = orch("repo", "set", "ghost", "--test-target", "t")
    assert result.code == 2 and "no repo named 'ghost'" in result.err


def test_description_from_file_and_stdin(
    orch: Orch, app_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text("Long description\nwith lines\n")
    from_file = json.loads(orch("task", "add", "app", "From file", "-f", str(spec), "--json").out)
    assert from_file["description"] == "Long description\nwith lines\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("piped in"))
    from_stdin = json.loads(orch("task", "add", "app", "From stdin", "-f", "-", "--json").out)
    assert from_stdin["description"] == "piped in"
    missing = orch("task", "add", "app", "No file", "-f", str(tmp_path / "nope.md"))
    assert missing.code == 2 and "cannot read the description" in missing.err


def test_task_list_filters(orch: Orch, app_repo: Path, make_repo: Callable[..., Path]) -> None:
    orch("repo", "add", "other", str(make_repo("other")))
    first = orch("task", "add", "app", "One").out.strip()
    second = orch("task", "add", "other", "Two").out.strip()
    ids = lambda *args: [t["id"] for t in json.loads(orch("task", "list", "--json", *args).out)]  # noqa: E731
    assert ids() == [first, second]
    assert ids("--repo", "other") == [second]
    assert ids("--stage", "analysis", "--state", "active") == [first, second]
    assert ids("--state", "done") == []
    assert "no tasks match" in orch("task", "list", "--state", "done").err


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("nope", "error: no repo named 'nope' (see: orch repo list)\n"),
        ("../x", "error: invalid repo name '../x': "),
        ("app/..", "error: invalid repo name 'app/..': "),
    ],
)
def test_task_list_on_a_repo_that_cannot_exist_is_exit_2(
    orch: Orch, app_repo: Path, repo: str, message: str
) -> None:
    orch("task", "add", "app", "One")
    for extra in ((), ("--json",)):
        refused = orch("task", "list", "--repo", repo, *extra)
        assert (refused.code, refused.out) == (2, "")
        assert refused.err.startswith(message) and refused.err.count("\n") == 1


def test_task_show_for_people(orch: Orch, app_repo: Path) -> None:
    task_id = orch("task", "add", "app", "Readable title").out.strip()
    shown = orch("task", "show", task_id)
    assert shown.code == 0
    for text in (task_id, "Readable title", "analysis", "intake", "01-task.md"):
        assert text in shown.out


def test_artifact_of_a_round_that_has_none_is_exit_2(orch: Orch, app_repo: Path) -> None:
    task_id = orch("task", "add", "app", "x").out.strip()
    assert orch("task", "artifact", task_id, "01-task.md", "--round", "1").code == 0
    missing = orch("task", "artifact", task_id, "01-task.md", "--round", "2")
    assert missing.code == 2 and "round 2" in missing.err
    unknown = orch("task", "show", "zzzz9999")
    assert unknown.code == 2 and "no task zzzz9999" in unknown.err


def test_db_upgrade_reports_the_revision(orch: Orch, db_url: str) -> None:
    first = orch("db", "upgrade")
    assert first.code == 0 and f"to revision {HEAD_REVISION}" in first.out
    assert "already at revision" in orch("db", "upgrade").out


def test_help_works_with_a_broken_setting(orch: Orch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_PORT", "-1")
    assert orch("task", "--help").code == 0
    broken = orch("task", "list")
    assert broken.code == 2 and broken.err.startswith("error: ORCH_PORT: ")


@pytest.mark.parametrize(
    ("home", "message"),
    [
        ("/etc/passwd", "error: ORCH_HOME: /etc/passwd is not a folder\n"),
        ("/etc/passwd/orch", "error: ORCH_HOME: cannot create /etc/passwd/orch: /etc/passwd is "),
        ("/proc/orch-home", "error: ORCH_HOME: cannot create /proc/orch-home: "),  # even as root
    ],
)
def test_a_home_that_is_not_a_folder_we_can_make_is_exit_2(
    orch: Orch, monkeypatch: pytest.MonkeyPatch, home: str, message: str
) -> None:
    monkeypatch.setenv("ORCH_HOME", home)
    refused = orch("task", "list")
    assert (refused.code, refused.out) == (2, "")
    assert refused.err.startswith(message) and refused.err.count("\n") == 1


def test_a_bad_host_is_exit_2_naming_it(orch: Orch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_HOST", "http://0.0.0.0:8765")
    refused = orch("task", "list")
    assert refused.code == 2
    assert refused.err == (
        "error: ORCH_HOST: expected a hostname or an IP address (got 'http://0.0.0.0:8765')\n"
    )
