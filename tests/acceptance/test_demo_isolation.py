"""`orch demo` keeps to its own folder: the user's home, database, tasks and repos stay as
they were, whatever ORCH_HOME or ORCH_DB_URL says; and its summary tells where artifacts are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.acceptance.test_demo_doctor import bare_env, orch
from tests.helpers import git


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("user_keys", [("ORCH_HOME",), ("ORCH_DB_URL",)])
def test_demo_leaves_the_users_home_database_and_pending_task_untouched(
    tmp_path: Path, user_keys: tuple[str, ...]
) -> None:
    # The user's own setup: a registered repo and a task waiting for a worker.
    repo = tmp_path / "users-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# mine\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "mine")
    main_before = git(repo, "rev-parse", "main").strip()
    user_home = tmp_path / "users-home"
    user = {"ORCH_HOME": str(user_home), "ORCH_DB_URL": f"sqlite:///{user_home / 'orch.db'}"}
    setup = bare_env(tmp_path, **user)
    assert orch(setup, "repo", "add", "mine", str(repo), cwd=tmp_path).returncode == 0
    added = orch(setup, "task", "add", "mine", "My own task", "-d", "Mine.", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    task_id = json.loads(added.stdout)["id"]
    home_before = snapshot(user_home)

    env = bare_env(tmp_path, **{key: user[key] for key in user_keys})
    result = orch(env, "demo", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ended done after 2 round(s)" in result.stdout
    # Nothing of the user's changed: not a byte of the home or the database, not the repo.
    assert snapshot(user_home) == home_before
    assert git(repo, "rev-parse", "main").strip() == main_before
    shown = orch(setup, "task", "show", task_id, "--json", cwd=tmp_path)
    task = json.loads(shown.stdout)
    assert (task["stage"], task["state"], task["round"]) == ("analysis", "active", 1)
    assert [e["from_stage"] for e in task["events"]] == [None]  # the intake event only
    [line] = result.stderr.splitlines()  # one notice, naming what the demo left alone
    assert all(key in line for key in user_keys) and "untouched" in line


def artifacts_line(stdout: str) -> str:
    [line] = [line for line in stdout.splitlines() if re.match(r"\s+artifacts\s", line)]
    return line


def test_demo_summary_names_the_removed_temporary_folder(tmp_path: Path) -> None:
    result = orch(bare_env(tmp_path, TMPDIR=str(tmp_path)), "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # nothing of the user's to leave alone, so no notice
    [root] = re.findall(r"^orchestrator demo in (\S+)", result.stdout, flags=re.MULTILINE)
    line = artifacts_line(result.stdout)
    assert f"removed with the temporary folder {root} " in line
    assert not Path(root).exists() and Path(root).parent == tmp_path


def test_demo_summary_names_the_kept_artifacts(tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    result = orch(bare_env(tmp_path), "demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = Path(artifacts_line(result.stdout).split()[-1])
    assert shown.parent == folder / "home" / "tasks"
    assert (shown / "13-test-report.md").is_file() and (shown / "16-deploy-log.md").is_file()
