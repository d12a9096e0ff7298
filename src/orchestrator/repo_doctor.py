"""`orch doctor`'s look at each registered repo: can its tasks be checked as configured?

One line per repo and command: the working copy is there, the test command's program is
found and (for pytest) collects tests, the staging and deploy commands' programs are found,
the health URL answers. Warnings, never fatal: a repo's trouble is its tasks', not the
machine's. It runs nothing of the repo's beyond pytest's own `--collect-only`.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import httpx

from orchestrator.doctor import Check
from orchestrator.proc import run_command
from orchestrator.runners.base import python_argv, suite_env
from orchestrator.runners.test_runner import runs_pytest, test_argv
from orchestrator.store import Repo

COLLECT_TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 2.0


def _program(argv: list[str], where: Path) -> str | None:
    """Why the command's program cannot be found from `where`, or None when it can."""
    if not argv:
        return "it is blank"
    path = suite_env(where).get("PATH", os.environ.get("PATH", ""))
    program = argv[0]
    if "/" in program:
        found = (where / program).resolve() if not Path(program).is_absolute() else Path(program)
        return None if found.is_file() else f"{program} does not exist"
    return None if shutil.which(program, path=path) else f"{program} is not on PATH"


def _tests(repo: Repo, where: Path) -> Check:
    name = f"{repo.name}: tests"
    argv = python_argv(test_argv(repo), where)
    missing = _program(argv, where)
    if missing is not None:
        return Check(name, False, f"`{shlex.join(argv)}`: {missing}", needed=False)
    if not runs_pytest(argv):
        return Check(name, True, f"`{shlex.join(argv)}` (judged by its exit code)", needed=False)
    collect = run_command(
        [*argv, "--collect-only", "-q"], cwd=where, env=suite_env(where), timeout=COLLECT_TIMEOUT_S
    )
    last = next((ln for ln in reversed(collect.stdout.splitlines()) if ln.strip()), "")
    if collect.returncode not in (0, 5):
        return Check(name, False, f"pytest cannot collect: {last or collect.stderr}", needed=False)
    return Check(name, collect.returncode == 0, f"`{shlex.join(argv)}`: {last}", needed=False)


def _command(repo: Repo, where: Path, what: str, command: str | None, without: str) -> Check:
    name = f"{repo.name}: {what}"
    if not command:
        return Check(name, True, f"none: {without}", needed=False)
    argv = shlex.split(command)
    missing = _program(argv, where)
    detail = f"`{command}`" + (f": {missing}" if missing else "")
    return Check(name, missing is None, detail, needed=False)


def _health(repo: Repo) -> Check:
    name = f"{repo.name}: health URL"
    if not repo.health_url:
        return Check(name, True, "none: the post-deploy watch is SKIPPED", needed=False)
    try:
        status = httpx.get(repo.health_url, timeout=HEALTH_TIMEOUT_S).status_code
    except httpx.HTTPError as exc:
        return Check(name, False, f"{repo.health_url}: no answer ({exc})", needed=False)
    return Check(name, 200 <= status < 300, f"{repo.health_url}: {status}", needed=False)


def check_repo(repo: Repo) -> list[Check]:
    """Every check of one repo."""
    if repo.is_remote:
        return [
            Check(repo.name, True, f"{repo.path}: a remote, cloned by each worker", needed=False)
        ]
    where = Path(repo.path)
    if not (where / ".git").exists():
        return [Check(repo.name, False, f"{where} is not a git working copy", needed=False)]
    return [
        _tests(repo, where),
        _command(repo, where, "staging", repo.staging_command, "staging is SKIPPED"),
        _command(repo, where, "deploy", repo.deploy_command, "the merge is the deploy"),
        _health(repo),
    ]
