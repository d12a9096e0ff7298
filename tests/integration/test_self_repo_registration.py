"""`orch repo add/set --self`: only a local working copy, warned when it is not the running code."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.helpers import git

OrchExe = Callable[..., subprocess.CompletedProcess[str]]


def test_a_bare_repository_or_a_url_cannot_be_the_self_repo(
    orch_exe: OrchExe, make_repo: Callable[..., Path], tmp_path: Path, orch_home: Path
) -> None:
    source = make_repo("app")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    for where in (str(bare), "https://example.invalid/self.git"):
        refused = orch_exe("repo", "add", "selfremote", where, "--self")
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "--self" in refused.stderr and "working copy" in refused.stderr
    assert "selfremote" not in orch_exe("repo", "list").stdout  # nothing half-made
    assert orch_exe("repo", "add", "remote", str(bare)).returncode == 0
    refused = orch_exe("repo", "set", "remote", "--self")
    assert refused.returncode == 2 and "working copy" in refused.stderr
    listed = orch_exe("repo", "list", "--json")
    assert listed.returncode == 0 and '"is_self": true' not in listed.stdout
    assert '"name": "remote"' in listed.stdout


def test_a_working_copy_the_service_does_not_run_from_is_added_with_a_warning(
    orch_exe: OrchExe, make_repo: Callable[..., Path], orch_home: Path
) -> None:
    elsewhere = make_repo("elsewhere")
    added = orch_exe("repo", "add", "self", str(elsewhere), "--self")
    assert added.returncode == 0, added.stderr
    assert "warning: --self" in added.stderr and "self deploys are refused" in added.stderr
