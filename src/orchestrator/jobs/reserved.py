"""The reserved-agent table: deterministic runners that claim a stage before `_spawn` does.

A runner claims its stage when its kill-switch is on, the repo is in its repo-scope CSV
(`*` = all), and the repo has the command it needs. Otherwise the stage falls back to its LLM
agent (tester, deployer), or, for the stages that have none, blocks for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from orchestrator.pipeline.stages import Producer, Stage
from orchestrator.settings import Settings
from orchestrator.store import Job, Repo, Task

if TYPE_CHECKING:
    from orchestrator.jobs.context import JobContext, JobEnd


@dataclass(frozen=True)
class ReservedAgent:
    """A deterministic runner and the conditions under which it claims its stage."""

    producer: Producer
    stage: Stage
    switch: str  # the settings field of its kill-switch
    scope: str | None  # the settings field of its repo-scope CSV; None: every repo
    needs: Callable[[Repo], bool]  # does the repo have the command it needs?
    launch: Callable[[JobContext, Job, Task, Repo], JobEnd]

    def claims(self, repo: Repo, settings: Settings) -> bool:
        """True when this runner, not an LLM, produces the stage's artifact for `repo`."""
        if not getattr(settings, self.switch):
            return False
        if self.scope is not None:
            scope: frozenset[str] = getattr(settings, self.scope)
            if "*" not in scope and repo.name not in scope:
                return False
        return self.needs(repo)


# Filled by the runners (the next step of the roadmap); until then every stage goes to its
# LLM agent, and the stages without one block for a person.
RESERVED_AGENTS: Mapping[Stage, ReservedAgent] = MappingProxyType({})


def claiming_runner(stage: Stage, repo: Repo, settings: Settings) -> ReservedAgent | None:
    """The runner that claims `stage` for `repo`, if any."""
    agent = RESERVED_AGENTS.get(stage)
    return agent if agent is not None and agent.claims(repo, settings) else None
