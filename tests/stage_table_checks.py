"""Checks derived from the stage table (`pipeline.stages.STAGE_TRANSITIONS`), as functions of a
table: the suite runs them on the real table, and on a copy with a stage added, to show that
they follow the table with no other edit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.pipeline.gates import GateStatus, table_gate
from orchestrator.pipeline.stages import Outcome, Producer, StageSpec, StageTable, runner_key
from orchestrator.prompts import verdict_lines
from orchestrator.settings import Settings
from tests.governance_checks import markdown_table

GOES = {Outcome.ROLLBACK: "development", Outcome.BLOCKED: "blocked", Outcome.FAILED: "failed"}


def table_problems(
    table: StageTable,
    *,
    prompts: Iterable[str],
    call_site_roles: Iterable[str],
    runner_code: Iterable[Producer],
    settings: Settings,
) -> list[str]:
    """What a stage of `table` lacks: a prompt or a call site for its LLM role (the agent's
    usage would have no row to go to), code or settings for its runner, a gate that reads its
    own verdict lines, a way to be reached."""
    prompts, sites, code = set(prompts), set(call_site_roles), set(runner_code)
    problems = []
    for spec in table.values():
        role, runner = spec.llm_role, spec.runner
        if role is not None and role.value not in prompts:
            problems.append(f"{spec.stage}: no prompt for {role}")
        if role is not None and role.value not in sites:
            problems.append(f"{spec.stage}: no LLM call site for {role}")
        if runner is not None and runner not in code:
            problems.append(f"{spec.stage}: no code for {runner}")
        if runner is not None:
            try:
                settings.runner(runner_key(runner))
            except KeyError:
                problems.append(f"{spec.stage}: no settings for {runner}")
        problems.extend(f"{spec.stage}: {p}" for p in gate_problems(spec))
    problems.extend(f"{stage}: never reached" for stage in unreachable(table))
    return problems


def gate_problems(spec: StageSpec) -> list[str]:
    """A single-key stage's gate must pass its pass lines and fail its fail lines; a prompt
    must ask for exactly those lines."""
    if len(spec.verdict_keys) != 1:
        return []
    gate = table_gate(spec)
    passing, failing = verdict_lines(spec)
    problems = []
    if gate(passing + "\n").status is not GateStatus.PASSED:
        problems.append("its gate does not pass its own pass lines")
    if gate(failing + "\n").status is not GateStatus.FAILED:
        problems.append("its gate does not fail its own fail lines")
    return problems


def unreachable(table: StageTable) -> list[str]:
    """Stages no pass edge leads to from the first stage."""
    stages = list(table)
    seen, at = {stages[0]}, table[stages[0]].on_pass
    while at is not None and at not in seen:
        seen.add(at)
        at = table[at].on_pass
    return [str(stage) for stage in stages if stage not in seen]


def readme_rows(table: StageTable) -> list[dict[str, str]]:
    """The README's pipeline table as the stage table says it must read."""
    rows = []
    for spec in table.values():
        first = spec.pass_lines[0]
        rest = [line.split(":")[0] for line in spec.pass_lines[1:]]
        on_fail = GOES[spec.on_fail] + (
            " (`RETEST`: testing)" if "RETEST" in spec.fail_values else ""
        )
        rows.append(
            {
                "stage": str(spec.stage),
                "producer": str(spec.producers[0]),
                "artifact": spec.artifact,
                "verdict key": f"`{first}`"
                + (f" (+ {', '.join(f'`{k}`' for k in rest)})" if rest else ""),
                "pass →": str(spec.on_pass or "done"),
                "fail →": on_fail,
            }
        )
    return rows


def readme_problems(readme: str, table: StageTable) -> list[str]:
    """Rows of the README's pipeline table that differ from the stage table."""
    shown = markdown_table(readme, "stage")
    expected = readme_rows(table)
    return [
        f"README pipeline row {want['stage']}: {got} != {want}"
        for got, want in zip(shown, expected, strict=False)
        if got != want
    ] + (
        [f"README pipeline table has {len(shown)} rows, the stage table {len(expected)}"]
        if len(shown) != len(expected)
        else []
    )


def runner_doc_problems(doc: str, table: StageTable) -> list[str]:
    """docs/runners.md's table: one row per runner of the table, with its stage, its
    artifact and its fallback (an LLM role, or a person)."""
    shown = {row["runner"]: row for row in markdown_table(doc, "stage")}
    problems = []
    for spec in table.values():
        if spec.runner is None:
            continue
        row: Mapping[str, str] | None = shown.pop(str(spec.runner), None)
        if row is None:
            problems.append(f"docs/runners.md has no row for {spec.runner}")
            continue
        fallback = f"the LLM {spec.llm_role}" if spec.llm_role else "waits for a person"
        if (row["stage"], row["artifact"]) != (str(spec.stage), f"`{spec.artifact}`"):
            problems.append(f"docs/runners.md row {spec.runner}: stage or artifact differ")
        if not row["otherwise"].startswith(fallback):
            problems.append(f"docs/runners.md row {spec.runner}: otherwise is not {fallback!r}")
    problems.extend(f"docs/runners.md names a runner the table lacks: {r}" for r in shown)
    return problems
