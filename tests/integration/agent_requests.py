"""Agent requests with a real worktree folder, for the transport tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.settings import Settings, load_settings
from orchestrator.transport.types import AgentRequest

PROMPT = "# Task T-0001\n\nAdd a --json flag.\nPROMPT-SENTINEL-7f3a: it's a 'quoted' $HOME line\n"
MakeRequest = Callable[..., AgentRequest]


def settings(backend: str, **overrides: object) -> Settings:
    """Settings for `backend` with a short kill grace, so that timeouts end quickly."""
    return load_settings(agent_backend=backend, kill_grace_s=0.5, **overrides)


def request_factory(tmp_path: Path) -> MakeRequest:
    """Factory: an AgentRequest with a real worktree folder and artifact paths under tmp."""

    # fmt: off
    def make(role: str = "analyst", stage: str = "analysis", round_: int = 1,
             artifact: str = "02-analysis.md", timeout: float = 20.0,
             worktree: Path | None = None) -> AgentRequest:
        # fmt: on
        if worktree is None:
            worktree = tmp_path / "worktree"
            worktree.mkdir(exist_ok=True)
        artifact_dir = tmp_path / "tasks" / "T-0001"
        return AgentRequest(
            role=role, stage=stage, task_id="T-0001", round=round_, worktree=worktree,
            artifact_dir=artifact_dir, artifact_path=artifact_dir / artifact, prompt=PROMPT,
            log_path=tmp_path / "logs" / f"{role}-{round_}.log", timeout_s=timeout,
        )  # fmt: skip

    return make
