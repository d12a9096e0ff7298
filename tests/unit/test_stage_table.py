"""The stage table drives everything derived from it: the real table passes every derived
check, and a copy with one more stage is followed by each check with no other edit."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from orchestrator.governance.call_sites import CALL_SITES
from orchestrator.jobs.accounting import CALL_SITE_OF_ROLE
from orchestrator.jobs.reserved import RESERVED_AGENTS
from orchestrator.overview import RUNNER_KEYS
from orchestrator.pipeline.gates import GATES, GateStatus
from orchestrator.pipeline.stages import (
    FALLBACK_ROLES,
    LLM_STAGES,
    RUNNER_STAGES,
    SERIAL_STAGES,
    STAGE_TRANSITIONS,
    Outcome,
    Producer,
    Stage,
    StageSpec,
    llm_stages,
    runner_stages,
)
from orchestrator.prompts import ROLES, VERDICTS, verdict_lines
from orchestrator.settings import load_settings
from orchestrator.transport.scripted_agent import DEFAULT_VERDICTS
from tests.fakes.agent import VERDICTS as FAKE_VERDICTS
from tests.stage_table_checks import readme_problems, runner_doc_problems, table_problems

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = {p.stem for p in (ROOT / "src" / "orchestrator" / "prompts").glob("*.md")}
SETTINGS = load_settings()


def _problems(table, prompts=PROMPTS, sites=None):
    return table_problems(
        table,
        prompts=prompts,
        call_site_roles=sites if sites is not None else {s.role for s in CALL_SITES},
        runner_code=[agent.producer for agent in RESERVED_AGENTS.values()],
        settings=SETTINGS,
    )


def test_the_real_table_passes_every_derived_check():
    assert _problems(STAGE_TRANSITIONS) == []
    assert readme_problems((ROOT / "README.md").read_text(), STAGE_TRANSITIONS) == []
    assert runner_doc_problems((ROOT / "docs" / "runners.md").read_text(), STAGE_TRANSITIONS) == []


def test_what_is_derived_from_the_table_matches_it():
    assert set(GATES) == set(STAGE_TRANSITIONS)
    assert tuple(role.value for role in LLM_STAGES) == ROLES
    assert set(CALL_SITE_OF_ROLE) >= set(ROLES)  # no agent's usage without a row to go to
    assert {a.producer: a.stage for a in RESERVED_AGENTS.values()} == dict(RUNNER_STAGES)
    assert set(RUNNER_KEYS) == set(RUNNER_STAGES)
    assert set(FALLBACK_ROLES) == {Producer.TESTER, Producer.DEPLOYER}
    assert {Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY} == SERIAL_STAGES
    for role, stage in LLM_STAGES.items():
        assert VERDICTS[role.value] == verdict_lines(STAGE_TRANSITIONS[stage])
        # The two stand-ins for a model write each role's passing lines (they import only
        # the standard library, to start in milliseconds, so this check keeps them in step).
        passing = "\n".join(STAGE_TRANSITIONS[stage].pass_lines)
        assert DEFAULT_VERDICTS[role.value] == passing
        assert FAKE_VERDICTS[role.value] == passing


# A stage added in a copy of the table: a docs stage after post-deploy, written by an LLM
# "writer" (closed enums get a copy with one more member each).
Stage2 = StrEnum("Stage2", {**{s.name: s.value for s in Stage}, "DOCS": "docs"})
Producer2 = StrEnum("Producer2", {**{p.name: p.value for p in Producer}, "WRITER": "writer"})
DOCS = StageSpec(
    Stage2.DOCS, Producer2.WRITER, None, "18-docs.md", ("docs_status",), None, Outcome.BLOCKED,
    True, ("docs_status: WRITTEN",), ("docs_status: BLOCKED",), frozenset({"WRITTEN"}),
    frozenset({"BLOCKED"}),
)  # fmt: skip


def _with_docs():
    rows = dict(STAGE_TRANSITIONS)
    rows[Stage.POST_DEPLOY] = dataclasses.replace(rows[Stage.POST_DEPLOY], on_pass=DOCS.stage)
    rows[DOCS.stage] = DOCS
    return MappingProxyType(rows)


def test_a_stage_added_to_a_copy_of_the_table_is_followed_by_every_derived_check():
    table = _with_docs()
    assert llm_stages(table)[Producer2.WRITER] == DOCS.stage
    assert runner_stages(table) == RUNNER_STAGES
    # Its role has no prompt and no call site yet: the checks say so, and nothing else.
    assert _problems(table) == ["docs: no prompt for writer", "docs: no LLM call site for writer"]
    sites = {s.role for s in CALL_SITES} | {"writer"}
    assert _problems(table, PROMPTS | {"writer"}, sites) == []
    # Its gate and its prompt's verdict lines come from its row.
    assert verdict_lines(DOCS) == ("docs_status: WRITTEN", "docs_status: BLOCKED")
    # The README must show it: the docs check names the missing row.
    readme = (ROOT / "README.md").read_text()
    assert any("has 8 rows, the stage table 9" in p for p in readme_problems(readme, table))


def test_the_derived_checks_fail_when_one_side_changes_alone():
    broken = dict(STAGE_TRANSITIONS)
    broken[Stage.REVIEW] = dataclasses.replace(
        broken[Stage.REVIEW], pass_values=frozenset({"LGTM"})
    )
    assert _problems(MappingProxyType(broken)) == [
        "review: its gate does not pass its own pass lines"
    ]
    unreachable = dict(STAGE_TRANSITIONS)
    unreachable[Stage.ANALYSIS] = dataclasses.replace(
        unreachable[Stage.ANALYSIS], on_pass=Stage.DEVELOPMENT
    )
    assert _problems(MappingProxyType(unreachable)) == ["design: never reached"]
    readme = (
        (ROOT / "README.md").read_text().replace("| review | reviewer |", "| review | person |")
    )
    assert readme_problems(readme, STAGE_TRANSITIONS) != []
    assert GATES[Stage.REVIEW]("review_verdict: APPROVED\n").status is GateStatus.PASSED
