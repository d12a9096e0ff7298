"""The real agent CLIs for tests: where the pinned ones are, how to point them at a local model.

`.ci/run` installs the CLIs pinned in `.ci/agent-clis/package.json`; on a machine without
them (a laptop with no Node), the tests that need one skip with the command that installs
them, and under CI=true they fail instead: CI must run them. Only the model is a stand-in
(`tests/fakes/anthropic_server.py`, `tests/fakes/responses_server.py`): the CLI, its tools,
its permission checks and the orchestrator's spawn path are the real ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.prompts import VERDICTS
from orchestrator.store import Job
from tests.conftest import IN_CI
from tests.fakes.anthropic_server import AnthropicServer
from tests.fakes.model_script import Edit, Exchange, Reply, Script, Text, Write
from tests.fakes.responses_server import ResponsesServer

ROOT = Path(__file__).resolve().parents[1]
CLI_PACKAGES = ROOT / ".ci" / "agent-clis"
CLI_BIN = CLI_PACKAGES / "node_modules" / ".bin"
INSTALL = f"cd {CLI_PACKAGES.relative_to(ROOT)} && npm install --no-package-lock"


def pinned_version(package: str) -> str:
    """The version of `package` the tests pin (the stream formats they read are its)."""
    manifest = json.loads((CLI_PACKAGES / "package.json").read_text())
    return str(manifest["dependencies"][package])


def real_cli(name: str) -> Path:
    """The folder holding the pinned real `name` CLI; skips (fails under CI) without it."""
    if (CLI_BIN / name).exists():
        return CLI_BIN
    reason = f"the real {name} CLI is not installed ({INSTALL})"
    if IN_CI:
        pytest.fail(f"{reason}, and under CI=true the real-agent tests must run")
    pytest.skip(reason)


@contextmanager
def claude_on(
    script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnthropicServer]:
    """The real Claude Code as the configured agent, talking to a scripted local model."""
    folder = real_cli("claude")
    with AnthropicServer(script) as server:
        for key, value in server.env(tmp_path / "claude-home").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("ORCH_AGENT_BACKEND", "claude")
        yield server


@contextmanager
def codex_on(
    script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResponsesServer]:
    """The real Codex CLI as the configured agent, talking to a scripted local model.

    The tests' ORCH_HOME lives under the temporary folder, which Codex's sandbox leaves
    writable by default: that would hide a write outside the granted roots, so the sandbox
    here excludes the temporary folders, as it is for an ORCH_HOME in a user's home.
    """
    folder = real_cli("codex")
    with ResponsesServer(script) as server:
        home = tmp_path / "codex-home"
        for key, value in server.codex_home(home).items():
            monkeypatch.setenv(key, value)
        with (home / "config.toml").open("a") as config:
            config.write(
                "\n[sandbox_workspace_write]\nexclude_slash_tmp = true\n"
                "exclude_tmpdir_env_var = true\n"
            )
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("ORCH_AGENT_BACKEND", "codex")
        yield server


@dataclass(frozen=True)
class Change:
    """The developer's edit: `old` becomes `new` in `file` of the task's worktree."""

    file: str
    old: str
    new: str


def delivering(home: Path, change: Change) -> Script:
    """A model that plays every role well: the developer edits the code, each role writes its
    artifact with the passing verdict, then says it is done.

    It decides from what is on disk, not from turn numbers, so a CLI's own extra steps (a
    Read before an Edit) do not confuse it.
    """

    def script(exchange: Exchange) -> Reply:
        role, artifact = exchange.role, Path(exchange.artifact_path)
        if role == "developer":
            code = home / "worktrees" / exchange.task_id / change.file
            if change.new not in code.read_text():
                return Edit(str(code), change.old, change.new)
        if not artifact.is_file():
            return Write(str(artifact), f"# {role}\n\nWritten by the scripted model.\n\n"
                         f"{VERDICTS[role][0]}\n")  # fmt: skip
        return Text(f"The {role}'s work is in {artifact.name}.")

    return script


def answering(text: str) -> Script:
    """A model that only ever answers with text: it writes nothing."""
    return lambda exchange: Text(text)


def assert_usage_matches(jobs: list[Job], server: AnthropicServer | ResponsesServer) -> None:
    """The agent jobs' recorded tokens add up to what the model server reported, side calls
    (a session title) included: they are spent too."""
    agent_jobs = [job for job in jobs if job.backend in ("claude", "codex")]
    assert agent_jobs, "no agent job ran"
    reported = [server.served, *([server.side] if isinstance(server, AnthropicServer) else [])]
    for field in ("tokens_in", "tokens_out", "cache_read_tokens"):
        recorded = sum(getattr(job, field) or 0 for job in agent_jobs)
        assert recorded == sum(getattr(s, field) for s in reported), field
        assert recorded > 0, field
    if isinstance(server, AnthropicServer):  # Claude Code prices its calls and counts turns
        assert all((job.cost_usd or 0) > 0 and (job.turns or 0) >= 2 for job in agent_jobs)
