"""The call-site registry: every place orchestrator calls an LLM, as data.

The docs (`docs/llm-call-sites.md`, `docs/llm-determinization-roadmap.md`) carry the same
table in machine-readable blocks, and anti-drift tests keep them equal to this one. Adding an
LLM call anywhere means adding a row here first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

ProducerKind = Literal["llm", "deterministic", "hybrid"]
State = Literal["implemented", "planned"]


@dataclass(frozen=True)
class CallSite:
    """One place the product calls (or used to call) an LLM."""

    id: str
    name: str
    stage: str
    role: str
    producer: ProducerKind  # who produces the outcome today
    state: State
    kill_switch: str | None  # the ORCH_* key that turns the deterministic part on or off
    fallback: str | None  # what runs when the kill-switch is off or the repo out of scope
    replaceability: int  # 1: code can decide it now ... 5: needs judgement; the roadmap's rank

    def document(self) -> dict[str, Any]:
        """The row as the docs' machine blocks hold it."""
        return asdict(self)


CALL_SITES: tuple[CallSite, ...] = (
    CallSite("A1", "analysis", "analysis", "analyst", "llm", "implemented", None, None, 5),
    CallSite("A2", "design", "design", "architect", "llm", "implemented", None, None, 5),
    CallSite("A3", "development", "development", "developer", "llm", "implemented",
             None, None, 5),
    CallSite("A4", "code review", "review", "reviewer", "llm", "implemented", None, None, 3),
    CallSite("A5", "test report", "testing", "tester", "hybrid", "implemented",
             "ORCH_TEST_RUNNER_ENABLED", "tester", 1),
    CallSite("A6", "staging log", "deploy-staging", "deployer", "hybrid", "implemented",
             "ORCH_STAGING_RUNNER_ENABLED", "deployer", 1),
    CallSite("A7", "failure summary", "development", "summarizer", "hybrid", "implemented",
             "ORCH_FAILURE_SUMMARY_ENABLED", "the raw report", 2),
)  # fmt: skip


def by_id(call_id: str) -> CallSite:
    """The call site with that id."""
    return next(site for site in CALL_SITES if site.id == call_id)
