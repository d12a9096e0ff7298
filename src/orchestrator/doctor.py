"""`orch doctor`: is this machine ready to run the pipeline? One line per check."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import OrchError
from orchestrator.pipeline.stages import RUNNER_STAGES, STAGE_TRANSITIONS, runner_key
from orchestrator.proc import run_command
from orchestrator.settings import TOKEN_FILE, Settings, is_loopback, load_settings
from orchestrator.store import open_store
from orchestrator.store.migrate import HEAD_REVISION, MIGRATIONS
from orchestrator.transport import cli_version
from orchestrator.transport.probe import permissions, probe

GIT_MINIMUM = (2, 38)  # `git merge-tree --write-tree`, which the deploy-finalizer uses


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    needed: bool = True  # a failing check that is not needed is a warning

    @property
    def fatal(self) -> bool:
        """Something needed is missing."""
        return self.needed and not self.ok


def check_python() -> Check:
    """Python 3.11 or newer."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", sys.version_info >= (3, 11), f"{version} at {sys.executable}")


def check_git() -> Check:
    """git on PATH, recent enough for merges without a working tree."""
    if shutil.which("git") is None:
        return Check("git", False, "not on PATH")
    output = run_command(["git", "--version"]).stdout.strip()
    found = re.search(r"(\d+)\.(\d+)", output)
    version = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    minimum = ".".join(map(str, GIT_MINIMUM))
    return Check("git", version >= GIT_MINIMUM, f"{output} (needs {minimum} or newer)")


def check_pytest() -> Check:
    """pytest for the orchestrator's interpreter (the test-runner's default command)."""
    result = run_command([sys.executable, "-m", "pytest", "--version"], timeout=60)
    detail = (result.stdout or result.stderr).strip().splitlines()
    return Check("pytest", result.ok, detail[0] if detail else "not installed")


def check_home(settings: Settings) -> Check:
    """ORCH_HOME exists (or can be made) and is writable."""
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("ORCH_HOME", False, f"{home} is not writable: {exc.strerror or exc}")
    return Check("ORCH_HOME", True, f"{home} is writable")


def check_database(settings: Settings) -> Check:
    """The database answers, and its schema is current or one this code can upgrade."""
    try:
        store = open_store(settings, migrate=False)
    except OrchError as exc:
        return Check("database", False, str(exc))
    try:
        revision = store.schema_revision()
        damage = store.integrity_problem()
    except OrchError as exc:
        return Check("database", False, str(exc))
    finally:
        store.close()
    where = "SQLite" if settings.database_url.startswith("sqlite") else "PostgreSQL"
    if damage is not None:
        return Check("database", False, f"{where}, the file is damaged: {damage}")
    if revision == HEAD_REVISION:
        return Check("database", True, f"{where}, schema at revision {revision}")
    if revision is None:
        return Check(
            "database", True, f"{where}, empty: set up at revision {HEAD_REVISION} on first use"
        )
    if not (MIGRATIONS / "versions" / f"{revision}.py").exists():
        # A newer orchestrator migrated it (or something else wrote alembic_version): this
        # code cannot read it, and every command but this one would refuse to start.
        return Check(
            "database",
            False,
            f"{where}, schema at revision {revision}, which this orchestrator does not know "
            f"(its newest is {HEAD_REVISION}): upgrade orchestrator",
        )
    return Check(
        "database",
        True,
        f"{where}, schema at revision {revision}: upgraded to {HEAD_REVISION} on first use",
    )


def check_agent(settings: Settings) -> Check:
    """The configured agent backend's CLI is on PATH and answers `--version` (what was run
    is shown: for a command agent it is the user's own command). A command agent need not
    know the flag, so there its failure is a warning; Claude Code and Codex must answer."""
    found = cli_version(settings)
    name = f"agent ({settings.agent_backend})"
    if found.line is None:
        return Check(name, False, f"{found.executable} is not on PATH (ORCH_AGENT_BACKEND)")
    if not found.ran:
        return Check(name, True, f"{found.executable}: {found.line}")
    needed = settings.agent_backend != "command"
    return Check(name, found.ok, f"ran `{found.ran}`: {found.line}", needed=needed)


def check_agent_permissions(settings: Settings) -> Check:
    """What the agents may do; a warning when ORCH_AGENT_ARGS switches the safety off."""
    unsafe = "dangerously" in (settings.agent_args or "")
    return Check("agent permissions", not unsafe, permissions(settings), needed=False)


def check_agent_online(settings: Settings) -> Check:
    """One tiny call through the real spawn path (`--online`): the key, the URL, the quota."""
    name = "agent online"
    result = probe(settings)
    if result is None:
        return Check(name, True, "this backend calls no model API of its own", needed=False)
    if not result.ok:
        return Check(name, False, f"{result.kind}: {result.message or 'no message'}")
    spent = result.usage
    tokens = f", {spent.tokens_in} tokens in, {spent.tokens_out} out" if spent.tokens_in else ""
    return Check(name, True, f"the model answered in {result.duration_s:.1f}s{tokens}")


def check_runners(settings: Settings) -> list[Check]:
    """How each deterministic runner is configured (informational, never fatal)."""
    checks = []
    for producer, stage in RUNNER_STAGES.items():
        config = settings.runner(runner_key(producer))
        role = STAGE_TRANSITIONS[stage].llm_role
        fallback = f"the stage goes to the LLM {role}" if role else "the stage waits for a person"
        scope = ",".join(sorted(config.repos))
        detail = f"on for repos {scope}" if config.enabled else f"off: {fallback}"
        checks.append(Check(producer.value, config.enabled, detail, needed=False))
    return checks


def check_api(settings: Settings) -> Check:
    """`orch serve` binds a non-loopback address only with an API token."""
    if is_loopback(settings.host) or settings.token:
        token = (
            "writes need ORCH_API_TOKEN"
            if settings.token
            else f"writes need the token orch serve generates into {settings.home / TOKEN_FILE}"
        )
        return Check("API", True, f"{settings.host}:{settings.port}, {token}")
    return Check(
        "API",
        False,
        f"ORCH_HOST={settings.host} is not loopback and ORCH_API_TOKEN "
        "is not set: orch serve would refuse to start",
    )


def run_checks(online: bool = False) -> list[Check]:
    """Every check, in the order people read them; `online` adds one live agent call."""
    checks = [check_python(), check_git(), check_pytest()]
    try:
        settings = load_settings()
    except OrchError as exc:
        return [*checks, Check("settings", False, str(exc))]
    checks.append(Check("settings", True, "every ORCH_* value is valid"))
    steps: list[Callable[[Settings], Check]] = [
        check_home,
        check_database,
        check_agent,
        check_agent_permissions,
        *([check_agent_online] if online else []),
        check_api,
    ]
    checks += [step(settings) for step in steps]
    return checks + check_runners(settings) + check_repos(settings)


def check_repos(settings: Settings) -> list[Check]:
    """Each registered repo's commands (repo_doctor.py); none when the database is away."""
    from orchestrator.repo_doctor import check_repo  # it builds on Check, defined here

    try:
        store = open_store(settings)
    except OrchError:
        return []  # the database line says why
    try:
        return [check for repo in store.list_repos() for check in check_repo(repo)]
    except OrchError:
        return []
    finally:
        store.close()
