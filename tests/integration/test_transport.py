"""The LLM transport through the real spawn path, with fake `claude`, `codex` and agent CLIs."""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from pathlib import Path

import pytest
from pytest import MonkeyPatch

from orchestrator.doctor import check_agent_permissions
from orchestrator.proc import CancelToken, Started, process_alive
from orchestrator.settings import Settings
from orchestrator.transport.call import build_argv, call_agent
from orchestrator.transport.types import ErrorKind, Usage
from tests.integration.agent_requests import PROMPT, MakeRequest, request_factory, settings

LABEL = "> Written by the scripted agent (ORCH_AGENT_BACKEND=scripted), not by an LLM."
pytestmark = pytest.mark.usefixtures("fake_bin")  # fake claude, codex, fake-agent first on PATH


@pytest.fixture
def make_request(tmp_path: Path) -> MakeRequest:
    return request_factory(tmp_path)


SPY = """import json, os, subprocess, sys
from pathlib import Path
prompt = sys.stdin.read()
folder = Path(os.environ["ORCH_ARTIFACT_DIR"])
(folder / "spy.json").write_text(json.dumps({"argv": sys.argv, "stdin": prompt}))
run = subprocess.run([os.environ["SPY_TARGET"], *sys.argv[1:]], input=prompt, text=True)
sys.exit(run.returncode)
"""


def test_claude_ok_gets_the_prompt_on_stdin_and_reports_usage(
    fake_bin: Path, make_request: MakeRequest, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    spy = tmp_path / "spy-bin" / "claude"  # first on PATH: records argv and stdin, runs the fake
    spy.parent.mkdir()
    spy.write_text(f"#!{sys.executable}\n{SPY}")
    spy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SPY_TARGET", str(fake_bin / "claude"))
    config = settings("claude")
    request = make_request()
    result = call_agent(config, request)
    assert result.kind is ErrorKind.OK, result.message
    assert (result.backend, result.exit_code, result.final_text) == ("claude", 0, "All done.")
    assert result.usage == Usage(
        tokens_in=1500, tokens_out=320, cache_read_tokens=9000, cache_write_tokens=200,
        cost_usd=0.0421, num_turns=3, session_id="sess-123",
    )  # fmt: skip
    seen = json.loads((request.artifact_dir / "spy.json").read_text())
    assert seen["stdin"] == PROMPT
    assert seen["argv"][1:] == build_argv(config, request)[1:]
    assert seen["argv"][1:4] == ["-p", "--output-format", "stream-json"]
    assert not any("PROMPT-SENTINEL" in arg for arg in seen["argv"])
    assert request.artifact_path.read_text().startswith("# analyst")


def test_agent_env_has_task_variables_and_user_variables_but_no_orchestrator_secrets(
    make_request: MakeRequest, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    secrets = {
        "ORCH_API_TOKEN": "secret-token-0451", "CLAUDECODE": "1",
        "ORCH_DB_URL": f"sqlite:///{tmp_path}/secret-db.sqlite",
        "ORCH_ALERT_WEBHOOK_URL": "https://hooks.example.invalid/secret-hook",
    }  # fmt: skip
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MY_TOOL_SETTING", "kept as is")
    request = make_request(role="reviewer", stage="review", round_=2, artifact="09-review.md")
    result = call_agent(settings("claude"), request)
    assert result.kind is ErrorKind.OK, result.message
    raw = (request.artifact_dir / "claude-env.json").read_text()
    env = json.loads(raw)
    expected = {
        "ORCH_TASK_ID": "T-0001", "ORCH_STAGE": "review", "ORCH_ROLE": "reviewer",
        "ORCH_ROUND": "2", "ORCH_WORKTREE": str(request.worktree),
        "ORCH_ARTIFACT_DIR": str(request.artifact_dir),
        "ORCH_ARTIFACT_PATH": str(request.artifact_dir / "09-review.md"),
    }  # fmt: skip
    assert {key: env.get(key) for key in expected} == expected
    assert (env["MY_TOOL_SETTING"], env["PATH"]) == ("kept as is", os.environ["PATH"])
    assert [key for key in secrets if key in env] == []
    assert "secret-token-0451" not in raw and "secret-hook" not in raw


@pytest.mark.parametrize(
    ("mode", "kind", "words"),
    [
        ("no_artifact", ErrorKind.NO_ARTIFACT, "without writing 02-analysis.md"),
        ("auth", ErrorKind.AUTH, "Invalid API key"),
        ("rate_limited", ErrorKind.RATE_LIMITED, "429 rate_limit_error"),
        ("error_result", ErrorKind.AGENT_ERROR, "I could not finish"),
        ("malformed", ErrorKind.PROTOCOL_ERROR, "without a result line"),
        ("crash", ErrorKind.AGENT_ERROR, "claude exited 139"),
        ("retry_notice", ErrorKind.OK, ""),
    ],
)
def test_claude_modes_map_to_error_kinds(
    make_request: MakeRequest, monkeypatch: MonkeyPatch, mode: str, kind: ErrorKind, words: str
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", mode)
    result = call_agent(settings("claude"), make_request())
    assert result.kind is kind, result.message
    assert words in result.message if words else result.message == ""


def test_claude_hang_times_out_and_leaves_no_process(
    make_request: MakeRequest, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "hang")
    started: list[Started] = []
    result = call_agent(settings("claude"), make_request(timeout=1.0), on_start=started.append)
    assert result.kind is ErrorKind.TIMEOUT and result.kind.retryable
    assert result.message == "no result within 1s"
    assert result.duration_s < 1.0 + 0.5 + 3.0
    assert not process_alive(started[0].pid, started[0].create_time)


def test_cancel_from_another_thread_ends_a_hanging_agent_as_cancelled(
    make_request: MakeRequest, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "hang")
    token = CancelToken()
    timer = threading.Timer(0.5, token.cancel)
    timer.start()
    try:
        result = call_agent(settings("claude"), make_request(timeout=30.0), cancel=token)
    finally:
        timer.cancel()
        token.close()
    assert result.kind is ErrorKind.CANCELLED
    assert result.duration_s < 5


@pytest.mark.parametrize(
    ("backend", "extra", "program"),
    [
        ("claude", {}, "claude"),
        ("codex", {}, "codex"),
        ("command", {"agent_command": "fake-agent --role {role}"}, "fake-agent"),
    ],
)
def test_backend_cli_not_on_path_is_cli_missing_and_not_retried(
    make_request: MakeRequest, monkeypatch: MonkeyPatch, backend: str, extra: dict, program: str
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent/orch-test-bin")
    request = make_request()
    result = call_agent(settings(backend, **extra), request)
    assert result.kind is ErrorKind.CLI_MISSING and not result.kind.retryable
    assert f"{program} is not on PATH" in result.message
    assert not request.log_path.exists()


def test_missing_worktree_is_spawn_failed_and_nothing_runs(
    make_request: MakeRequest, tmp_path: Path
) -> None:
    request = make_request(worktree=tmp_path / "no-such-worktree")
    result = call_agent(settings("claude"), request)
    assert result.kind is ErrorKind.SPAWN_FAILED and result.kind.retryable
    assert "no-such-worktree" in result.message and "missing" in result.message
    assert not (request.artifact_dir / "claude-env.json").exists()


def test_codex_argv_runs_in_the_worktree_grants_the_artifact_folder_and_reads_stdin(
    make_request: MakeRequest,
) -> None:
    request = make_request()
    argv = build_argv(settings("codex", agent_args="--model o4-mini"), request)
    assert argv == [
        "codex", "exec", "--json", "--sandbox", "workspace-write", "-C", str(request.worktree),
        "--add-dir", str(request.artifact_dir), "--model", "o4-mini", "-",
    ]  # fmt: skip


def test_claude_argv_grants_the_artifact_folder_in_its_safe_permission_mode(
    make_request: MakeRequest,
) -> None:
    request = make_request()
    argv = build_argv(settings("claude", agent_args="--model sonnet"), request)
    assert argv == [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--add-dir", str(request.artifact_dir), "--permission-mode", "acceptEdits",
        "--model", "sonnet",
    ]  # fmt: skip
    assert not any("dangerously" in arg for arg in argv)


TEMPLATE = (
    "fake-agent --role {role} --stage {stage} --task {task_id} --round {round} "
    "--wt {worktree} --out {artifact_path}"
)


def test_command_backend_renders_placeholders_into_argv_and_feeds_the_prompt(
    make_request: MakeRequest, tmp_path: Path
) -> None:
    worktree = tmp_path / "my work tree"  # a space: one argument, because no shell is involved
    worktree.mkdir()
    request = make_request("developer", "development", 2, "07-dev-notes.md", worktree=worktree)
    config = settings("command", agent_command=TEMPLATE)
    argv = build_argv(config, request)
    assert argv == [
        "fake-agent", "--role", "developer", "--stage", "development", "--task", "T-0001",
        "--round", "2", "--wt", str(worktree), "--out", str(request.artifact_path),
    ]  # fmt: skip
    result = call_agent(config, request)
    assert result.kind is ErrorKind.OK, result.message
    assert f"developer: done (args: {' '.join(argv[1:])})" in result.log_path.read_text()
    assert (request.artifact_dir / "prompt-developer-r2.txt").read_text() == PROMPT
    assert (worktree / "work.txt").read_text() == "round 2 by the developer\n"  # cwd = worktree
    assert "dev_status: DONE" in request.artifact_path.read_text()


def test_command_nonzero_exit_is_agent_error_with_last_line(make_request: MakeRequest) -> None:
    code = "import sys; print('working'); print('disk quota exceeded'); sys.exit(4)"
    command = shlex.join([sys.executable, "-c", code])
    result = call_agent(settings("command", agent_command=command), make_request())
    assert result.kind is ErrorKind.AGENT_ERROR and result.exit_code == 4
    assert result.message == "exit 4: disk quota exceeded"


@pytest.mark.parametrize(
    ("role", "stage", "verdict"),
    [
        ("analyst", "analysis", "analysis_status: READY"),
        ("developer", "development", "dev_status: DONE"),
        ("reviewer", "review", "review_verdict: APPROVED"),
    ],
)
def test_scripted_without_scenario_writes_a_labelled_passing_artifact(
    make_request: MakeRequest, role: str, stage: str, verdict: str
) -> None:
    request = make_request(role, stage)
    result = call_agent(settings("scripted"), request)
    assert result.kind is ErrorKind.OK and result.backend == "scripted"
    text = request.artifact_path.read_text()
    assert text.startswith(LABEL) and verdict in text.splitlines()
    assert f"({len(PROMPT)} characters of prompt)" in result.log_path.read_text()


SCENARIO = """
[[steps]]
role = "developer"
round = 1
artifact = "dev_status: DONE\\nfirst attempt\\n"
[[steps]]
role = "developer"
round = 2
artifact = '''
dev_status: DONE
fixed the failing test in round two
'''
[steps.files]
"src/calc.py" = "def add(a, b):\\n    return a + b\\n"
[[steps]]
role = "reviewer"
write_artifact = false
[[steps]]
role = "tester"
exit = 3
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Settings:
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO)
    return settings("scripted", agent_scenario=path)


def test_scripted_scenario_step_for_role_and_round_writes_files_and_artifact(
    scenario: Settings, make_request: MakeRequest
) -> None:
    first = make_request("developer", "development", 1, "07-dev.md")
    assert call_agent(scenario, first).kind is ErrorKind.OK
    assert "first attempt" in first.artifact_path.read_text()
    assert not (first.worktree / "src" / "calc.py").exists()
    second = make_request("developer", "development", 2, "07-dev.md")
    result = call_agent(scenario, second)
    assert result.kind is ErrorKind.OK, result.message
    assert (second.worktree / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    text = second.artifact_path.read_text()
    assert text.startswith(LABEL) and "fixed the failing test in round two" in text


@pytest.mark.parametrize(
    ("role", "kind", "exit_code"),
    [
        ("reviewer", ErrorKind.NO_ARTIFACT, 0),
        ("tester", ErrorKind.AGENT_ERROR, 3),
        ("analyst", ErrorKind.OK, 0),  # no step for the role: the default passing artifact
    ],
)
def test_scripted_scenario_outcomes(
    scenario: Settings, make_request: MakeRequest, role: str, kind: ErrorKind, exit_code: int
) -> None:
    result = call_agent(scenario, make_request(role, role, artifact=f"{role}.md"))
    assert (result.kind, result.exit_code) == (kind, exit_code), result.message


RETRYABLE = {
    ErrorKind.AUTH: False, ErrorKind.CLI_MISSING: False, ErrorKind.NO_ARTIFACT: True,
    ErrorKind.AGENT_ERROR: True, ErrorKind.TIMEOUT: True, ErrorKind.RATE_LIMITED: True,
    ErrorKind.SPAWN_FAILED: True, ErrorKind.PROTOCOL_ERROR: True, ErrorKind.CANCELLED: True,
}  # fmt: skip


@pytest.mark.parametrize(("kind", "expected"), RETRYABLE.items())
def test_error_kind_retryable(kind: ErrorKind, expected: bool) -> None:
    assert kind.retryable is expected


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        ("claude", "--permission-mode acceptEdits"),
        ("codex", "--sandbox workspace-write"),
        ("command", "no sandbox of orchestrator's"),
    ],
)
def test_doctor_says_what_each_backends_agents_may_write(backend: str, words: str) -> None:
    extra = {"agent_command": "fake-agent"} if backend == "command" else {}
    check = check_agent_permissions(settings(backend, **extra))
    assert check.ok and words in check.detail and not check.needed


def test_doctor_warns_when_the_agent_args_switch_the_safety_off() -> None:
    check = check_agent_permissions(settings("claude", agent_args="--dangerously-skip-permissions"))
    assert not check.ok and not check.fatal
    assert "ORCH_AGENT_ARGS adds --dangerously-skip-permissions" in check.detail
