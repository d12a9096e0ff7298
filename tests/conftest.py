"""Shared fixtures: a clean environment, real git repositories, and both database backends."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from orchestrator.cli import main as orch_main
from orchestrator.pipeline.stages import Stage
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store, open_store
from tests.helpers import git, tallies_agree

PG_URL = os.environ.get("ORCH_TEST_PG_URL")
IN_CI = os.environ.get("CI") == "true"
ORCH_EXE = str(Path(sys.executable).with_name("orch"))
_pg_passed: list[str] = []
_pg_nodes: set[str] = set()  # tests that used a PostgreSQL schema


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test starts with no ORCH_* or GIT_* variables, its own ORCH_HOME and git identity."""
    for key in list(os.environ):
        if (key.startswith("ORCH_") and key != "ORCH_TEST_PG_URL") or key.startswith("GIT_"):
            monkeypatch.delenv(key)
    home = tmp_path / "orch-home"
    monkeypatch.setenv("ORCH_HOME", str(home))
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Orch Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "orch-test@example.invalid")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # no stray .env file is read
    return home


@pytest.fixture
def orch_home(clean_env: Path) -> Path:
    """The test's ORCH_HOME."""
    return clean_env


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a real git repository with one commit on `branch`."""

    def make(name: str = "app", files: dict[str, str] | None = None, branch: str = "main") -> Path:
        path = tmp_path / "repos" / name
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", branch)
        for relative, content in (files or {"README.md": f"# {name}\n"}).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial commit")
        return path

    return make


# --- databases -----------------------------------------------------------------------------


def _require_pg() -> str:
    if PG_URL:
        return PG_URL
    if IN_CI:
        pytest.fail("ORCH_TEST_PG_URL is not set, and under CI=true PostgreSQL tests must run")
    pytest.skip("PostgreSQL tests need ORCH_TEST_PG_URL (e.g. postgresql+psycopg://...)")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    url = make_url(_require_pg())
    name = f"orch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty schema of its own for one test (search_path points at it)."""
    _pg_nodes.add(request.node.nodeid)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database URL of one backend; also set as ORCH_DB_URL for commands the test runs."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'orch.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("ORCH_DB_URL", url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on each backend; at the end its running totals must agree with the
    rows they total, whatever the test did (store/tallies.py)."""
    opened = open_store(load_settings(db_url=db_url))
    yield opened
    try:
        assert tallies_agree(opened), "the running totals drifted from the rows they total"
    finally:
        opened.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated store on PostgreSQL only (LISTEN/NOTIFY, concurrent claims and locks)."""
    opened = open_store(load_settings(db_url=pg_url))
    yield opened
    opened.close()


# The stages an agent-only pipeline skips: tasks end after testing.
AGENT_STAGES_ONLY_SKIP = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})


@pytest.fixture
def agent_repo(make_repo: Callable[..., Path], store: Store) -> Path:
    """A repo `app` registered with staging and the deploys skipped."""
    path = make_repo("app")
    spec = RepoSpec(path=str(path), default_branch="main", skip_stages=AGENT_STAGES_ONLY_SKIP)
    store.add_repo("app", spec)
    return path


# --- agents --------------------------------------------------------------------------------

FAKES = Path(__file__).parent / "fakes"


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH with fake `claude` and `codex` executables and `fake-agent`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, source in (
        ("claude", "claude.py"),
        ("codex", "codex.py"),
        ("fake-agent", "agent.py"),
    ):
        script = folder / name
        script.write_text(f"#!{sys.executable}\n" + (FAKES / source).read_text())
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


# --- the command line ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one `orch` invocation did."""

    code: int
    out: str
    err: str


@pytest.fixture
def orch(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run `orch` in this process (fast); the real executable is exercised in tests/acceptance."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            orch_main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def orch_exe() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `orch` executable as a subprocess with the test's environment."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ORCH_EXE, *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
            check=False,
        )

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    if item.nodeid in _pg_nodes:
        # A mark on the report itself: under pytest-xdist the report travels from the worker
        # that ran the test to the process that prints the summary; module state does not.
        report.user_properties.append(("postgresql", True))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and ("postgresql", True) in report.user_properties:
        _pg_passed.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    where = make_url(PG_URL).render_as_string(hide_password=True) if PG_URL else "not configured"
    terminalreporter.write_line(
        f"PostgreSQL ({where}): {len(_pg_passed)} tests passed against a real server"
    )
