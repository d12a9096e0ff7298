"""LLM governance: the docs' machine blocks match the code, and only the transport calls LLMs.

Every check is run on the real docs and code (it must pass) and on a copy with one side
changed alone (it must fail): a check that cannot fail is a defect.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.governance import CALL_SITES
from orchestrator.jobs.reserved import RESERVED_AGENTS
from orchestrator.pipeline.stages import STAGE_TRANSITIONS
from orchestrator.proc.sweep import MARKER_VAR
from orchestrator.prompts import ROLES, role_text
from orchestrator.runners.deploy_finalizer import DEPLOY_ATTEMPT_VAR
from orchestrator.settings import Settings, env_key
from orchestrator.transport.types import AgentRequest
from tests.governance_checks import (
    call_site_problems,
    call_site_table_problems,
    fallback_prompt_problems,
    policy_rule_problems,
    reserved_agent_problems,
    roadmap_problems,
    roadmap_table_problems,
    setting_key_problems,
    single_transport_problems,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "orchestrator"
CALL_SITES_DOC = (ROOT / "docs" / "llm-call-sites.md").read_text()
ROADMAP_DOC = (ROOT / "docs" / "llm-determinization-roadmap.md").read_text()
POLICY_DOC = (ROOT / "docs" / "llm-usage-policy.md").read_text()


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
OTHER_NAMES = {*REQUEST.variables(), MARKER_VAR, DEPLOY_ATTEMPT_VAR, "ORCH_TEST_PG_URL"}


# --- the real docs and code agree -------------------------------------------------------------


def test_call_sites_drift_the_doc_block_equals_the_registry() -> None:
    assert call_site_problems(CALL_SITES_DOC, registry()) == []


def test_reserved_agents_drift_the_doc_block_equals_the_launchers_table() -> None:
    assert reserved_agent_problems(CALL_SITES_DOC, reserved_table()) == []


def test_roadmap_drift_ranks_every_call_site_as_registered() -> None:
    assert roadmap_problems(ROADMAP_DOC, registry()) == []


RUNNER_STAGES = {agent.stage.value for agent in RESERVED_AGENTS.values()}


def test_call_sites_drift_the_readable_table_says_what_the_registry_says() -> None:
    assert call_site_table_problems(CALL_SITES_DOC, registry(), ROLES) == []


def test_roadmap_drift_the_status_follows_the_code_and_the_table_the_block() -> None:
    assert roadmap_table_problems(ROADMAP_DOC, registry(), RUNNER_STAGES) == []


def test_settings_drift_every_documented_key_is_a_setting_and_back() -> None:
    assert setting_key_problems(docs(), SETTINGS, OTHER_NAMES) == []


def test_prompts_drift_tester_and_deployer_are_the_fallback() -> None:
    assert fallback_prompt_problems({role: role_text(role) for role in ROLES}) == []


def test_policy_drift_the_usage_policy_states_every_rule() -> None:
    assert policy_rule_problems(POLICY_DOC) == []


def test_single_transport_only_the_transport_calls_llms_and_nothing_runs_a_shell() -> None:
    assert single_transport_problems(PACKAGE) == []


# --- each check catches a change made on one side only -----------------------------------------


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the package for the scan's mutation tests (each restores what it changes)."""
    copy = tmp_path_factory.mktemp("scan") / "orchestrator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@contextmanager
def appended(module: Path, code: str) -> Iterator[None]:
    """`module` with `code` at its end, for the duration of the block."""
    original = module.read_text()
    module.write_text(original + "\n" + code)
    try:
        yield
    finally:
        module.write_text(original)


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


def test_call_sites_drift_caught_when_the_readable_table_changes_alone() -> None:
    mutated = CALL_SITES_DOC.replace(
        "| A7 | failure summary | development | summarizer | hybrid",
        "| A7 | failure summary | development | summarizer | llm",
    )
    assert mutated != CALL_SITES_DOC
    assert call_site_table_problems(mutated, registry(), ROLES) == [
        "A7: the table's producer is 'llm'"
    ]
    changed = [{**row, "kill_switch": "ORCH_X"} if row["id"] == "A6" else row for row in registry()]
    assert call_site_table_problems(CALL_SITES_DOC, changed, ROLES)


def test_roadmap_drift_caught_when_the_status_or_the_table_changes_alone() -> None:
    done = ROADMAP_DOC.replace(
        '"id": "A4", "replaceability": 3, "state": "implemented", "status": "next"',
        '"id": "A4", "replaceability": 3, "state": "implemented", "status": "done"',
    )
    assert done != ROADMAP_DOC
    assert "A4: status 'done', the code says 'next'" in roadmap_table_problems(
        done, registry(), RUNNER_STAGES
    )
    table = ROADMAP_DOC.replace(
        "| 3 | A4 | code review | 3 (partly decidable) | next |",
        "| 3 | A4 | code review | 3 (partly decidable) | done |",
    )
    assert table != ROADMAP_DOC
    assert roadmap_table_problems(table, registry(), RUNNER_STAGES)
    # The code changes alone: the staging-runner is gone, so A6 is no longer done.
    assert roadmap_table_problems(ROADMAP_DOC, registry(), RUNNER_STAGES - {"deploy-staging"})


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


def test_policy_drift_caught_when_a_rule_loses_its_section() -> None:
    mutated = POLICY_DOC.replace("## 4. Budgets and accounting", "## 4. Accounting")
    assert mutated != POLICY_DOC
    assert policy_rule_problems(mutated) == ["the usage policy has no section on 'budgets'"]
    # Named in passing is not stated as a rule.
    demoted = POLICY_DOC.replace("## 2. One transport", "One transport, as below.")
    assert "one transport" in demoted.lower()
    assert policy_rule_problems(demoted) == ["the usage policy has no section on 'one transport'"]


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
        # Renamed imports are followed to what they stand for.
        ("jobs/summary.py", "from os import system as _s\n_s('ls')\n", "calls os.system"),
        ("jobs/summary.py", "from os import popen\n", "imports os.popen"),
        ("cli/task.py", "import os as _o\n_o.system('ls')\n", "calls os.system"),
        ("cli/task.py", "import os as _o\n_o.popen('ls')\n", "calls os.popen"),
        ("api/app.py", "import os\nos.execvp('ls', ['ls'])\n", "calls os.execvp"),
        ("api/app.py", "import os\nos.spawnlp(os.P_WAIT, 'ls', 'ls')\n", "calls os.spawnlp"),
        ("alerting.py", "import os\nos.posix_spawn('/bin/ls', ['ls'], {})\n", "os.posix_spawn"),
        ("doctor.py", "import os\ngetattr(os, 'system')('ls')\n", "calls os.system"),
        # asyncio's process starters: a shell nowhere, a program only in proc/.
        (
            "scheduler/worker.py",
            "import asyncio\nasyncio.create_subprocess_shell('ls')\n",
            "create_subprocess_shell: nothing runs a shell",
        ),
        (
            "proc/run.py",
            "import asyncio\nasyncio.create_subprocess_shell('ls')\n",
            "create_subprocess_shell: nothing runs a shell",
        ),
        (
            "runners/base.py",
            "import asyncio\nasyncio.create_subprocess_exec('ls')\n",
            "create_subprocess_exec: only proc/",
        ),
        (
            "runners/base.py",
            "from asyncio import create_subprocess_exec as _start\n",
            "imports asyncio.create_subprocess_exec",
        ),
        ("runners/smoke.py", "from asyncio import subprocess\n", "imports asyncio.subprocess"),
        # Dynamic imports: of a named module, or of one the scan cannot name.
        (
            "store/usage.py",
            "import importlib\nimportlib.import_module('subprocess')\n",
            "imports subprocess: only proc/",
        ),
        ("workspace/git.py", "__import__('anthropic')\n", "LLM SDK anthropic"),
        ("intake.py", "import importlib\nimportlib.import_module(NAME)\n", "computed name"),
        ("redact.py", "from google import genai\n", "LLM SDK google.genai"),
        # An agent CLI named as a command, in whatever shape.
        ("doctor.py", "ARGV = 'claude -p'.split()\n", "names a claude command line"),
        ("cli/demo.py", "ARGV = f'codex exec {ROLE}'\n", "names a codex command line"),
        ("cli/demo.py", "ARGV = '/usr/local/bin/claude --print'\n", "command line"),
        ("control.py", "import shutil\nshutil.which('claude')\n", "names the claude command"),
    ],
)
def test_single_transport_scan_catches_a_violation(
    package_copy: Path, module: str, injected: str, expected: str
) -> None:
    with appended(package_copy / module, injected):
        problems = single_transport_problems(package_copy)
    assert any(expected in problem and module in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("module", "injected"),
    [
        ("proc/run.py", "import os\nos.execvp('ls', ['ls'])\n"),
        ("proc/group.py", "import asyncio\nasyncio.create_subprocess_exec('ls')\n"),
        ("transport/codex.py", "ARGV = 'codex exec -'.split()\n"),
        ("settings.py", "BACKEND = 'claude'\n"),
        ("doctor.py", 'def f() -> None:\n    """claude -p is what the transport runs."""\n'),
    ],
)
def test_single_transport_scan_allows_what_proc_and_transport_may_do(
    package_copy: Path, module: str, injected: str
) -> None:
    with appended(package_copy / module, injected):
        assert single_transport_problems(package_copy) == []
