"""LLM governance: the docs' machine blocks match the code, and only the transport calls LLMs.

Every check is run on the real docs and code (it must pass) and on a copy with one side
changed alone (it must fail): a check that cannot fail is a defect.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.governance import CALL_SITES
from orchestrator.jobs.reserved import RESERVED_AGENTS
from orchestrator.pipeline.stages import STAGE_TRANSITIONS
from orchestrator.proc.sweep import MARKER_VAR
from orchestrator.prompts import ROLES, role_text
from orchestrator.settings import Settings, env_key
from orchestrator.transport.types import AgentRequest
from tests.governance_checks import (
    call_site_problems,
    fallback_prompt_problems,
    reserved_agent_problems,
    roadmap_problems,
    setting_key_problems,
    single_transport_problems,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "orchestrator"
CALL_SITES_DOC = (ROOT / "docs" / "llm-call-sites.md").read_text()
ROADMAP_DOC = (ROOT / "docs" / "llm-determinization-roadmap.md").read_text()
POLICY_DOC = ROOT / "docs" / "llm-usage-policy.md"


def registry() -> list[dict[str, object]]:
    return [site.document() for site in CALL_SITES]


def reserved_table() -> list[dict[str, object]]:
    rows = []
    for agent in RESERVED_AGENTS.values():
        fallback = STAGE_TRANSITIONS[agent.stage].llm_role
        rows.append(
            {
                "stage": agent.stage.value,
                "runner": agent.producer.value,
                "kill_switch": env_key(f"{agent.key}_enabled"),
                "repo_scope": env_key(f"{agent.key}_repos"),
                "fallback": fallback.value if fallback else None,
            }
        )
    return rows


def docs() -> dict[str, str]:
    paths = [ROOT / "README.md", ROOT / ".env.example", ROOT / "CLAUDE.md", ROOT / "AGENTS.md"]
    paths += sorted((ROOT / "docs").rglob("*.md")) + sorted((PACKAGE / "prompts").glob("*.md"))
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


SETTINGS = {env_key(name) for name in Settings.model_fields}
# ORCH_* names that are not settings: the task variables every agent gets, the process
# marker, and the URL the test suite reads.
REQUEST = AgentRequest("r", "s", "t", 1, Path(), Path(), Path(), "", Path(), 1.0)
OTHER_NAMES = {*REQUEST.variables(), MARKER_VAR, "ORCH_TEST_PG_URL"}


# --- the real docs and code agree -------------------------------------------------------------


def test_call_sites_drift_the_doc_block_equals_the_registry() -> None:
    assert call_site_problems(CALL_SITES_DOC, registry()) == []


def test_reserved_agents_drift_the_doc_block_equals_the_launchers_table() -> None:
    assert reserved_agent_problems(CALL_SITES_DOC, reserved_table()) == []


def test_roadmap_drift_ranks_every_call_site_as_registered() -> None:
    assert roadmap_problems(ROADMAP_DOC, registry()) == []


def test_settings_drift_every_documented_key_is_a_setting_and_back() -> None:
    assert setting_key_problems(docs(), SETTINGS, OTHER_NAMES) == []


def test_prompts_drift_tester_and_deployer_are_the_fallback() -> None:
    assert fallback_prompt_problems({role: role_text(role) for role in ROLES}) == []


def test_policy_drift_the_usage_policy_states_every_rule() -> None:
    policy = POLICY_DOC.read_text().lower()
    for rule in (
        "off the control path",
        "one transport",
        "kill-switch and a fallback",
        "budgets",
        "secrets never reach an agent",
    ):
        assert rule in policy, rule


def test_single_transport_only_the_transport_calls_llms_and_nothing_runs_a_shell() -> None:
    assert single_transport_problems(PACKAGE) == []


# --- each check catches a change made on one side only -----------------------------------------


def test_call_sites_drift_caught_when_the_doc_changes_alone() -> None:
    mutated = CALL_SITES_DOC.replace(
        '"ORCH_TEST_RUNNER_ENABLED", "fallback": "tester"',
        '"ORCH_TEST_RUNNER_ON", "fallback": "tester"',
    )
    assert mutated != CALL_SITES_DOC
    assert call_site_problems(mutated, registry())


def test_call_sites_drift_caught_when_the_registry_changes_alone() -> None:
    assert call_site_problems(CALL_SITES_DOC, registry()[:-1])
    changed = [{**row, "producer": "llm"} if row["id"] == "A5" else row for row in registry()]
    assert call_site_problems(CALL_SITES_DOC, changed)


def test_reserved_agents_drift_caught_on_either_side() -> None:
    assert reserved_agent_problems(CALL_SITES_DOC, reserved_table()[1:])
    mutated = CALL_SITES_DOC.replace('"runner": "deploy-finalizer"', '"runner": "deployer"')
    assert reserved_agent_problems(mutated, reserved_table())


def test_roadmap_drift_caught_on_either_side() -> None:
    mutated = ROADMAP_DOC.replace(
        '"id": "A4", "replaceability": 3', '"id": "A4", "replaceability": 2'
    )
    assert roadmap_problems(mutated, registry())
    extra = [*registry(), {**registry()[0], "id": "A8"}]
    assert roadmap_problems(ROADMAP_DOC, extra)


def test_settings_drift_caught_on_either_side() -> None:
    with_unknown = {**docs(), "docs/new.md": "Set ORCH_TURBO_MODE=1 to go faster."}
    assert setting_key_problems(with_unknown, SETTINGS, OTHER_NAMES)
    assert setting_key_problems(docs(), SETTINGS | {"ORCH_UNDOCUMENTED_KNOB"}, OTHER_NAMES)


def test_prompts_drift_caught_when_a_prompt_forgets_it_is_the_fallback() -> None:
    prompts = {role: role_text(role) for role in ROLES}
    prompts["tester"] = "You are the tester. Run the tests."
    assert fallback_prompt_problems(prompts) == [
        "the tester prompt does not say it is the fallback"
    ]


@pytest.mark.parametrize(
    ("module", "injected", "expected"),
    [
        ("scheduler/worker.py", "import anthropic\n", "LLM SDK anthropic"),
        ("jobs/launcher.py", "from openai import OpenAI\n", "LLM SDK openai"),
        ("runners/monitor.py", "ARGV = ['claude', '-p']\n", "builds a claude command line"),
        ("doctor.py", "CLI = ('codex', 'exec')\n", "builds a codex command line"),
        ("cli/task.py", "import subprocess\n", "only proc/ starts processes"),
        ("proc/run.py", "import os\nos.system('ls')\n", "calls os.system"),
        ("proc/group.py", "import subprocess\nsubprocess.run('ls', shell=True)\n", "shell="),
    ],
)
def test_single_transport_scan_catches_a_violation(
    tmp_path: Path, module: str, injected: str, expected: str
) -> None:
    copy = tmp_path / "orchestrator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n" + injected)
    problems = single_transport_problems(copy)
    assert any(expected in problem and module in problem for problem in problems), problems
