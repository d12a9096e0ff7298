"""Settings: one frozen object built at start from `ORCH_*` variables and `.env`."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.errors import ConfigError

AgentBackend = Literal["claude", "codex", "command", "scripted"]
Seconds = Annotated[float, Field(gt=0)]
RepoScope = Annotated[frozenset[str], NoDecode]

ENV_PREFIX = "ORCH_"
# Shorter tokens can be guessed; `secrets.token_urlsafe(32)` (the generated one) has 43.
MIN_TOKEN_CHARS = 16
# Where `orch serve` keeps the API token it generated when ORCH_API_TOKEN is not set.
TOKEN_FILE = "api-token"
# What an ORCH_AGENT_COMMAND argv template may refer to.
AGENT_PLACEHOLDERS = ("role", "stage", "task_id", "round", "worktree", "artifact_path")
# Settings whose values are secrets: never echoed in errors, never passed to agents.
SECRET_FIELDS = frozenset({"api_token", "db_url", "alert_webhook_url"})
# A DNS name (RFC 1123): dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?", re.IGNORECASE)


@dataclass(frozen=True)
class RunnerConfig:
    """One deterministic runner's settings, typed: its switch, the repos it covers, its time
    limit, and how many tool errors in a row it defers before the stage fails as infra."""

    enabled: bool
    repos: frozenset[str]
    timeout_s: float | None
    infra_retries: int

    def covers(self, repo: str) -> bool:
        """True when the runner is on and `repo` is in its scope."""
        return self.enabled and ("*" in self.repos or repo in self.repos)


def _default_home() -> Path:
    return Path("~/.orch").expanduser()


class Settings(BaseSettings):
    """Every setting of orchestrator, with its default and the reason for it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `ORCH_API_TOKEN=` means "no token", not an empty token
        extra="ignore",  # `.env` may hold the user's other variables
        frozen=True,
        validate_default=True,
    )

    # Where orchestrator keeps its database, worktrees and artifacts.
    home: Path = Field(default_factory=_default_home)
    # None: SQLite (WAL) at $ORCH_HOME/orch.db, the zero-setup default.
    db_url: str | None = None
    # SQLite only: how long a writer waits for another's lock before the database counts as
    # unreachable (a worker then rides the outage out and tries again).
    sqlite_busy_timeout_s: Seconds = 30.0
    # Loopback by default. Every write needs the API token; on any other bind, reads too.
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    # None: `orch serve` generates one into $ORCH_HOME/api-token at first start.
    api_token: SecretStr | None = None
    # Host names the API answers to besides its bind address and the loopback names (a
    # DNS-rebinding page's own name is refused).
    allowed_hosts: Annotated[frozenset[str], NoDecode] = frozenset()
    # The largest request body the API reads (413 beyond it).
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=1_000_000_000)

    # Two cores run four agent processes comfortably; agents mostly wait on the network.
    max_parallel_jobs: int = Field(default=4, ge=1, le=1024)
    # How many times a task may go back to development (so at most 1 + 3 rounds).
    max_dev_retries: int = Field(default=3, ge=0, le=100)
    # Re-tests of one round when the base or the branch moved before the merge (RETEST).
    max_retests: int = Field(default=5, ge=0, le=100)

    agent_backend: AgentBackend = "claude"
    agent_command: str | None = None
    # Extra arguments for the claude and codex CLIs (e.g. "--model sonnet"), split like argv.
    agent_args: str | None = None
    # The scripted backend's scenario (TOML); none: every role writes a passing artifact.
    agent_scenario: Path | None = None
    # Real agents take minutes on real changes; half an hour stops only a stuck one.
    agent_timeout_s: Seconds = 1800.0
    agent_retries: int = Field(default=2, ge=0, le=20)
    # A7: an LLM condenses the report that sent a task back into a note above it in the
    # developer's prompt. Off by default: the developer always gets the report whole anyway.
    failure_summary_enabled: bool = False
    # Spending limits in US dollars (unset: none). A task over its budget, or any task once
    # the day's spending is over, is blocked with an alert before its next agent call.
    task_budget_usd: float | None = Field(default=None, gt=0)
    daily_budget_usd: float | None = Field(default=None, gt=0)
    # Time a killed job gets between SIGTERM and SIGKILL to clean up.
    kill_grace_s: Seconds = 5.0
    # A worker holds a running job for this long and renews it every third of it; a dead
    # worker's jobs are taken over once it runs out.
    lease_s: Seconds = 30.0

    test_runner_enabled: bool = True
    test_runner_repos: RepoScope = frozenset({"*"})
    test_runner_timeout_s: Seconds = 1800.0
    test_runner_infra_retries: int = Field(default=3, ge=0, le=100)
    test_runner_smoke_url: str | None = None

    staging_runner_enabled: bool = True
    staging_runner_repos: RepoScope = frozenset({"*"})
    staging_runner_timeout_s: Seconds = 1800.0
    staging_runner_infra_retries: int = Field(default=3, ge=0, le=100)

    # Off (or out of scope) means the stage blocks the task for a person: these two runners
    # have no LLM fallback.
    deploy_finalizer_enabled: bool = True
    deploy_finalizer_repos: RepoScope = frozenset({"*"})
    # Room for a real deploy command (a build, a push, a restart).
    deploy_finalizer_timeout_s: Seconds = 1800.0
    deploy_finalizer_infra_retries: int = Field(default=3, ge=0, le=100)
    post_deploy_monitor_enabled: bool = True
    post_deploy_monitor_repos: RepoScope = frozenset({"*"})
    post_deploy_monitor_infra_retries: int = Field(default=3, ge=0, le=100)
    # A repo's own check stages (orch.toml): always on, since the repo asked for them; each
    # stage has its own timeout in the file.
    check_runner_infra_retries: int = Field(default=3, ge=0, le=100)

    # A self deploy restarts the service on the merged code; the new process must answer
    # /health within this, or the change is reverted (the monitor window starts after it).
    self_start_timeout_s: Seconds = 60.0

    # The repo's setup command (e.g. creating .venv) runs once per worktree before its first
    # job; installing dependencies can take minutes.
    setup_timeout_s: Seconds = 900.0
    setup_retries: int = Field(default=2, ge=0, le=100)

    # A deferred job waits 30 s, then twice as long each time, never more than 10 min.
    defer_backoff_s: Seconds = 30.0
    defer_backoff_max_s: Seconds = 600.0

    # One minute of health polls every five seconds catches a service that dies at start.
    monitor_window_s: Seconds = 60.0
    monitor_interval_s: Seconds = 5.0
    alert_webhook_url: str | None = None

    @field_validator("home", mode="after")
    @classmethod
    def _check_home(cls, value: Path) -> Path:
        home = value.expanduser().absolute()
        problem = home_problem(home)
        if problem is not None:
            raise ValueError(problem)
        return home

    @field_validator("host", mode="after")
    @classmethod
    def _check_host(cls, value: str) -> str:
        problem = host_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("api_token", mode="after")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_TOKEN_CHARS:
            raise ValueError(f"too short: an API token has at least {MIN_TOKEN_CHARS} characters")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            for name in value:
                problem = host_problem(str(name))
                if problem is not None:
                    raise ValueError(f"{name!r}: {problem}")
            return frozenset(str(name).lower() for name in value)
        return value

    @field_validator("db_url", mode="after")
    @classmethod
    def _check_db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship; accept the plain URL form users copy around.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("expected a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("agent_command", "agent_args", mode="after")
    @classmethod
    def _check_argv_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split into arguments: {exc}") from None
        if not argv:
            raise ValueError("blank command")
        placeholders = dict.fromkeys(AGENT_PLACEHOLDERS, "x")
        for arg in argv:
            try:
                arg.format_map(placeholders)
            except (KeyError, IndexError, ValueError) as exc:
                known = " ".join("{" + name + "}" for name in AGENT_PLACEHOLDERS)
                raise ValueError(f"bad placeholder in {arg!r} ({exc}); known: {known}") from None
        return value

    @field_validator("agent_scenario", mode="after")
    @classmethod
    def _check_scenario(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"no scenario file at {value}")
        return value.expanduser().absolute() if value is not None else None

    @field_validator(
        "test_runner_repos",
        "staging_runner_repos",
        "deploy_finalizer_repos",
        "post_deploy_monitor_repos",
        mode="before",
    )
    @classmethod
    def _split_scope(cls, value: object) -> object:
        if isinstance(value, str):
            names = frozenset(part.strip() for part in value.split(",") if part.strip())
            if not names:
                raise ValueError("expected '*' or a comma-separated list of repo names")
            return names
        return value

    @field_validator("test_runner_smoke_url", "alert_webhook_url", mode="after")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.agent_backend == "command" and not self.agent_command:
            raise ValueError("agent_command: required when ORCH_AGENT_BACKEND=command")
        if self.defer_backoff_max_s < self.defer_backoff_s:
            raise ValueError("defer_backoff_max_s: must not be below ORCH_DEFER_BACKOFF_S")
        return self

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.db_url or f"sqlite:///{self.home / 'orch.db'}"

    @property
    def token(self) -> str | None:
        """The API token in clear, for comparison only."""
        return self.api_token.get_secret_value() if self.api_token else None

    def runner(self, key: str) -> RunnerConfig:
        """The settings of the runner whose prefix is `key` (`pipeline.stages.runner_key`),
        read field by field so that the type checker sees each one."""
        match key:
            case "test_runner":
                return RunnerConfig(
                    self.test_runner_enabled,
                    self.test_runner_repos,
                    self.test_runner_timeout_s,
                    self.test_runner_infra_retries,
                )
            case "staging_runner":
                return RunnerConfig(
                    self.staging_runner_enabled,
                    self.staging_runner_repos,
                    self.staging_runner_timeout_s,
                    self.staging_runner_infra_retries,
                )
            case "deploy_finalizer":
                return RunnerConfig(
                    self.deploy_finalizer_enabled,
                    self.deploy_finalizer_repos,
                    self.deploy_finalizer_timeout_s,
                    self.deploy_finalizer_infra_retries,
                )
            case "post_deploy_monitor":  # its time is the watch window
                return RunnerConfig(
                    self.post_deploy_monitor_enabled,
                    self.post_deploy_monitor_repos,
                    self.monitor_window_s,
                    self.post_deploy_monitor_infra_retries,
                )
            case "check_runner":  # a repo's own checks: on for every repo that declares one
                return RunnerConfig(True, frozenset({"*"}), None, self.check_runner_infra_retries)
        raise KeyError(f"no runner has the settings prefix {key!r}")


def home_problem(home: Path) -> str | None:
    """Why `home` cannot be ORCH_HOME, judged without creating anything; None when it can.

    It must be a folder we may write in, or one we may create: the nearest part of its path
    that exists must be a folder we may write in.
    """
    if home.exists():
        if not home.is_dir():
            return f"{home} is not a folder"
        if not os.access(home, os.W_OK | os.X_OK):
            return f"{home} is not writable"
        return None
    for parent in home.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"cannot create {home}: {parent} is not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"cannot create {home}: {parent} is not writable"
            return None
    return None


def ensure_home(settings: Settings) -> Path:
    """Create ORCH_HOME when it is missing; ConfigError naming the key when it cannot be."""
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"ORCH_HOME: cannot create {home}: {exc.strerror or exc}") from None
    return home


def host_problem(host: str) -> str | None:
    """Why `host` cannot be bound to, or None: `ORCH_HOST` and `orch serve --host` share it."""
    if not host.strip():
        return "empty; expected a hostname or an IP address"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # An all-digit last label is a mistyped IP address (999.1.1.1), not a name.
        top = host.rstrip(".").rsplit(".", 1)[-1]
        if HOSTNAME.fullmatch(host) is None or top.isdigit():
            return "expected a hostname or an IP address"
    return None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (an API there needs no token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_key(field: str) -> str:
    """The environment variable that sets a settings field."""
    return ENV_PREFIX + field.upper()


def load_settings(**overrides: object) -> Settings:
    """Build the settings; a bad value raises ConfigError with one line naming the key."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    field = str(error["loc"][0]) if error["loc"] else ""
    if not field and ":" in message:  # a model-level check names its field first
        field, message = (part.strip() for part in message.split(":", 1))
    shown = error.get("input")
    echo = field and field not in SECRET_FIELDS and isinstance(shown, str | int | float)
    echo = echo and str(shown) not in message  # the message may name the value already
    got = f" (got {shown!r})" if echo else ""
    return f"{env_key(field) if field else 'settings'}: {message}{got}"
