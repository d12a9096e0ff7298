"""How agent calls fail, through the real spawn path: every error kind, for every backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest import MonkeyPatch

from orchestrator.proc import Started, process_alive
from orchestrator.transport import claude, codex
from orchestrator.transport.call import call_agent
from orchestrator.transport.types import ErrorKind, Usage
from tests.integration.agent_requests import MakeRequest, request_factory, settings

pytestmark = pytest.mark.usefixtures("fake_bin")  # fake claude, codex, fake-agent first on PATH


@pytest.fixture
def make_request(tmp_path: Path) -> MakeRequest:
    return request_factory(tmp_path)


@pytest.mark.parametrize(
    ("mode", "kind", "words"),
    [
        ("status_401", ErrorKind.AUTH, "Request failed"),  # the structured status decides
        ("session_limit", ErrorKind.RATE_LIMITED, "hit your limit"),  # the `error` field
        ("auth_lookalike", ErrorKind.AGENT_ERROR, "error 4010"),  # retried, not blocked
    ],
)
def test_claude_structured_errors_decide_and_lookalike_words_do_not(
    make_request: MakeRequest, monkeypatch: MonkeyPatch, mode: str, kind: ErrorKind, words: str
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", mode)
    result = call_agent(settings("claude"), make_request())
    assert result.kind is kind, result.message
    assert words in result.message


@pytest.mark.parametrize(
    ("mode", "kind", "expected"),
    [
        ("ok", ErrorKind.OK, Usage(1000, 250, 400, session_id="th_1")),
        ("two_turns", ErrorKind.OK, Usage(1500, 300, 500, session_id="th_1")),
        ("reconnect", ErrorKind.OK, Usage(1000, 250, 400, session_id="th_1")),
        ("turn_failed", ErrorKind.AGENT_ERROR, "model refused"),
        ("auth", ErrorKind.AUTH, "401 Unauthorized"),
        ("rate_limited", ErrorKind.RATE_LIMITED, "last status: 429 Too Many Requests"),
        ("no_artifact", ErrorKind.NO_ARTIFACT, "without writing 02-analysis.md"),
        ("malformed", ErrorKind.PROTOCOL_ERROR, "without a completed turn"),
        ("crash", ErrorKind.AGENT_ERROR, "codex exited 2"),
    ],
)
def test_codex_modes_map_to_error_kinds_and_usage(
    make_request: MakeRequest, monkeypatch: MonkeyPatch, mode: str, kind: ErrorKind, expected: Any
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", mode)
    result = call_agent(settings("codex"), make_request())
    assert result.kind is kind, result.message
    assert result.kind.retryable is (kind not in (ErrorKind.OK, ErrorKind.AUTH))
    if kind is ErrorKind.OK:  # expected: the usage summed over turns; else words of the message
        assert (result.usage, result.final_text, result.message) == (expected, "Done.", "")
    else:
        assert expected in result.message


def test_codex_hang_times_out_and_leaves_no_process(
    make_request: MakeRequest, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "hang")
    started: list[Started] = []
    result = call_agent(settings("codex"), make_request(timeout=1.0), on_start=started.append)
    assert result.kind is ErrorKind.TIMEOUT and result.kind.retryable
    assert result.message == "no result within 1s"
    assert not process_alive(started[0].pid, started[0].create_time)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("#!/nonexistent/orch-test/python3\nprint('never runs')\n", "No such file"),
        ("\x7fELF but not really an executable\n", "Exec format error"),
    ],
)
def test_agent_that_cannot_be_executed_is_spawn_failed(
    make_request: MakeRequest, tmp_path: Path, content: str, reason: str
) -> None:
    agent = tmp_path / "agents" / "broken-agent"  # a real executable file: it is not missing
    agent.parent.mkdir()
    agent.write_text(content)
    agent.chmod(0o755)
    request = make_request()
    result = call_agent(settings("command", agent_command=f"{agent} {{role}}"), request)
    assert result.kind is ErrorKind.SPAWN_FAILED and result.kind.retryable, result.message
    assert f"cannot run {agent}" in result.message and reason in result.message
    assert not request.artifact_path.exists()


def test_relative_agent_command_resolves_from_the_orchestrator_directory(
    make_request: MakeRequest, fake_bin: Path, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    home = tmp_path / "my-agents"  # where the orchestrator runs; the agent runs in the worktree
    (home / "bin").mkdir(parents=True)
    for name in ("agent.sh", "bin/agent"):
        (home / name).write_text((fake_bin / "fake-agent").read_text())
        (home / name).chmod(0o755)
    monkeypatch.chdir(home)
    for command in ("./agent.sh {role}", "bin/agent {role}"):
        request = make_request("developer", "development")
        result = call_agent(settings("command", agent_command=command), request)
        assert result.kind is ErrorKind.OK, result.message
        assert "dev_status: DONE" in request.artifact_path.read_text()
        assert (request.worktree / "work.txt").exists()  # it ran in the worktree all the same


def test_relative_agent_command_that_does_not_exist_is_cli_missing(
    make_request: MakeRequest, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = call_agent(settings("command", agent_command="./nope.sh {role}"), make_request())
    assert result.kind is ErrorKind.CLI_MISSING and not result.kind.retryable
    assert result.message == (
        f"./nope.sh is not an executable file (from {tmp_path}) (ORCH_AGENT_BACKEND=command)"
    )


def line(**event: object) -> str:
    return json.dumps(event) + "\n"


OK_RESULT = line(type="result", subtype="success", is_error=False, result="done", num_turns=2)
RETRY = line(type="system", subtype="api_retry", error="overloaded, retrying")


@pytest.mark.parametrize(
    ("lines", "exit_code", "kind"),
    [
        ([RETRY, OK_RESULT], 0, ErrorKind.OK),
        (["stderr noise\n", "[1, 2]\n", "{broken\n", OK_RESULT], 0, ErrorKind.OK),
        ([OK_RESULT], 1, ErrorKind.AGENT_ERROR),  # is_error false, but the exit says otherwise
        ([OK_RESULT], None, ErrorKind.AGENT_ERROR),  # killed by a signal after its result
        ([line(type="result", is_error=True, result="boom"), OK_RESULT], 0, ErrorKind.OK),
        ([RETRY], 0, ErrorKind.PROTOCOL_ERROR),
        ([RETRY], 1, ErrorKind.AGENT_ERROR),
        ([line(type="result", is_error=True, result="Not logged in")], 1, ErrorKind.AUTH),
    ],
)
def test_claude_parse(lines: list[str], exit_code: int | None, kind: ErrorKind) -> None:
    assert claude.parse(lines, exit_code).kind is kind


DONE = line(type="turn.completed", usage={"input_tokens": 10, "output_tokens": 2})
RECONNECT = line(type="error", message="Reconnecting... 1/5")
DROPPED = line(type="error", message="stream disconnected")
RATE = line(type="turn.failed", error={"message": "rate limit exceeded"})


@pytest.mark.parametrize(
    ("lines", "exit_code", "kind", "words"),
    [
        ([RECONNECT, DONE], 0, ErrorKind.OK, ""),
        ([DONE, DROPPED], 1, ErrorKind.AGENT_ERROR, "stream disconnected"),
        ([line(type="thread.started")], 0, ErrorKind.PROTOCOL_ERROR, "without a completed turn"),
        ([RATE], 1, ErrorKind.RATE_LIMITED, "rate limit exceeded"),
    ],
)
def test_codex_parse(lines: list[str], exit_code: int, kind: ErrorKind, words: str) -> None:
    parsed = codex.parse(lines, exit_code)
    assert parsed.kind is kind
    assert words in parsed.message if words else parsed.message == ""
