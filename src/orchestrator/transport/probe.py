"""What `orch doctor` asks of the agent backend: its permissions, and one tiny live call."""

from __future__ import annotations

import tempfile
from pathlib import Path

from orchestrator.proc import run_command
from orchestrator.settings import Settings
from orchestrator.transport import claude, codex
from orchestrator.transport.call import call_agent
from orchestrator.transport.types import AgentRequest, AgentResult

PROBE_PROMPT = (
    "This is a connectivity check by `orch doctor`. Use no tool and write no file. "
    "Answer with the single word: ok.\n"
)
# One short answer; a model that needs longer than this will not serve a pipeline either.
PROBE_TIMEOUT_S = 120.0


def permissions(settings: Settings) -> str:
    """What the configured backend's agents may do, in the words of its own flags."""
    backend = settings.agent_backend
    if backend == "claude":
        granted = (
            f"--permission-mode {claude.PERMISSION_MODE}: edits in the worktree and the "
            "task's artifact folder (--add-dir), other tools refused"
        )
    elif backend == "codex":
        granted = (
            f"--sandbox {codex.SANDBOX}: writes in the worktree and the task's artifact "
            "folder (--add-dir)"
        )
    elif backend == "command":
        granted = "ORCH_AGENT_COMMAND runs with your own rights: no sandbox of orchestrator's"
    else:
        granted = "scripted: writes only its artifact"
    if settings.agent_args and backend in ("claude", "codex"):
        granted += f"; ORCH_AGENT_ARGS adds {settings.agent_args}"
    return granted


def probe(settings: Settings) -> AgentResult | None:
    """One tiny call through the real spawn path: can the agent reach its model? None for
    the backends that have no model API of their own (a command agent, the scripted one)."""
    if settings.agent_backend not in ("claude", "codex"):
        return None
    with tempfile.TemporaryDirectory(prefix="orch-doctor-") as folder:
        root = Path(folder)
        # Codex works only inside a git repository, as every task's worktree is.
        run_command(["git", "init", "--quiet", str(root)])
        request = AgentRequest(
            role="doctor",
            stage="doctor",
            task_id="doctor",
            round=1,
            worktree=root,
            artifact_dir=root / "artifacts",
            artifact_path=root / "artifacts" / "probe.md",
            prompt=PROBE_PROMPT,
            log_path=root / "probe.log",
            timeout_s=min(settings.agent_timeout_s, PROBE_TIMEOUT_S),
        )
        return call_agent(settings, request, artifact_required=False)
