"""The environment git runs in reaches the user's hooks: our secrets must not be in it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.proc.env import DENYLIST
from orchestrator.workspace import git

# A post-checkout hook that writes down every variable it was given, one per line.
HOOK = f"""#!{sys.executable}
import os
with open(os.environ["HOOK_DUMP"], "w") as out:
    out.write("\\n".join(f"{{k}}={{v}}" for k, v in sorted(os.environ.items())))
"""


def test_a_git_hook_sees_the_users_variables_and_none_of_our_secrets(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo("app")
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    dump = tmp_path / "hook-env"
    secrets = {
        "ORCH_API_TOKEN": "tok-do-not-leak-anywhere",
        "ORCH_DB_URL": "postgresql+psycopg://orch:pw-do-not-leak@db/orch",
        "ORCH_ALERT_WEBHOOK_URL": "https://hooks.example/do-not-leak",
        "CLAUDECODE": "1",
    }
    for key, value in {**secrets, "HOOK_DUMP": str(dump), "USER_OWN_SETTING": "kept"}.items():
        monkeypatch.setenv(key, value)

    git.add_worktree(repo, tmp_path / "worktree", "orch/abcdefgh", "main")

    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert set(secrets) <= DENYLIST
    assert not set(secrets) & set(seen), sorted(set(secrets) & set(seen))
    assert not any("do-not-leak" in value for value in seen.values())
    assert seen["USER_OWN_SETTING"] == "kept" and seen["GIT_TERMINAL_PROMPT"] == "0"
    assert seen["PATH"]  # everything else passes through
