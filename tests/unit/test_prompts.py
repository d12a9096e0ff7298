"""Role prompts: every role has one, rendered with the task, artifacts, feedback and verdict."""

from __future__ import annotations

import pytest

from orchestrator.pipeline.gates import run_gate
from orchestrator.pipeline.stages import STAGE_TRANSITIONS
from orchestrator.prompts import ROLES, VERDICTS, PromptContext, render_prompt, role_text


def context(role: str, **overrides: object) -> PromptContext:
    values: dict[str, object] = {
        "role": role,
        "task_id": "abcd2345",
        "round": 1,
        "branch": "orch/abcd2345",
        "base_branch": "main",
        "task_text": "# Add a flag\n\nto export",
        "artifacts": [("02-analysis.md", "analysis_status: READY\nnotes")],
        "artifact_path": "/home/u/.orch/tasks/abcd2345/10-development.md",
        **overrides,
    }
    return PromptContext(**values)  # type: ignore[arg-type]


def test_every_llm_role_of_the_pipeline_has_a_prompt() -> None:
    roles = {spec.llm_role for spec in STAGE_TRANSITIONS.values() if spec.llm_role}
    assert {r.value for r in roles} == set(ROLES)
    for role in ROLES:
        assert role_text(role).strip()


@pytest.mark.parametrize("role", ROLES)
def test_prompt_names_the_artifact_path_task_and_exact_verdict_lines(role: str) -> None:
    prompt = render_prompt(context(role))
    assert "/home/u/.orch/tasks/abcd2345/10-development.md" in prompt
    assert "# Add a flag" in prompt and "02-analysis.md" in prompt
    passing, failing = VERDICTS[role]
    assert all(f"    {line}" in prompt for line in passing.splitlines())
    assert all(f"    {line}" in prompt for line in failing.splitlines())


@pytest.mark.parametrize("role", ROLES)
def test_the_passing_verdict_lines_pass_their_stages_gate(role: str) -> None:
    stage = next(s.stage for s in STAGE_TRANSITIONS.values() if s.llm_role == role)
    passing, failing = VERDICTS[role]
    assert run_gate(stage, passing).passed
    assert not run_gate(stage, failing.replace("<how many failed>", "2")).passed


def test_feedback_appears_only_when_given_and_whole() -> None:
    report = "result: FAIL\n" + "\n".join(f"FAILED tests/test_{n}.py::test_x" for n in range(300))
    plain = render_prompt(context("developer"))
    assert "Feedback" not in plain
    with_feedback = render_prompt(
        context("developer", round=2, feedback=("13-test-report.md", report))
    )
    assert "## Feedback: why round 2 exists" in with_feedback
    assert "13-test-report.md" in with_feedback and report.strip() in with_feedback


def test_summary_goes_above_the_whole_report() -> None:
    prompt = render_prompt(
        context(
            "developer",
            round=2,
            feedback=("13-test-report.md", "the report"),
            summary="Short: test_y fails on None.",
        )
    )
    assert prompt.index("Short: test_y fails") < prompt.index("the report")


@pytest.mark.parametrize("role", ["tester", "deployer"])
def test_tester_and_deployer_prompts_say_their_llm_branch_is_the_fallback(role: str) -> None:
    assert "LLM branch is now the fallback" in role_text(role)


def test_unknown_role_has_no_prompt() -> None:
    with pytest.raises(ValueError, match="no prompt"):
        role_text("poet")
