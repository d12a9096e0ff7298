"""The scripted agent: a deterministic stand-in for an LLM, for the demo and tests.

It is a real executable started through the real spawn path, and it follows the contract
every agent follows: it reads its prompt on stdin, works in its cwd (the task worktree) and
writes its artifact to $ORCH_ARTIFACT_PATH. What it writes comes from a scenario file
($ORCH_AGENT_SCENARIO, TOML); without one, every role writes a passing artifact. Every
artifact it writes says that it was scripted.

Scenario format:

    [[steps]]
    role = "developer"          # required
    round = 1                   # optional: any round when left out
    sleep = 0.2                 # optional: seconds to take
    exit = 0                    # optional: exit status
    write_artifact = true       # optional: false to exit without an artifact
    artifact = '''
    dev_status: DONE
    '''
    [steps.files]               # optional: files to write, relative to the worktree
    "src/calc.py" = "..."

It imports only the standard library, and of that only what a step needs: it runs once per
job, and the orchestrator's own throughput is measured with it (bench/job_latency.py), so
its start-up is kept to the interpreter's (tomllib and pathlib alone would triple it).
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing itself costs a few milliseconds to import
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

LABEL = "> Written by the scripted agent (ORCH_AGENT_BACKEND=scripted), not by an LLM.\n\n"

DEFAULT_VERDICTS = {
    "analyst": "analysis_status: READY",
    "architect": "design_status: READY",
    "developer": "dev_status: DONE",
    "reviewer": "review_verdict: APPROVED",
    "tester": "result: PASS\nstatus: PASS\ntests_failed: 0",
    "deployer": "staging_status: PASSED",
}


def _step(scenario: dict[str, Any], role: str, round_: int) -> dict[str, Any] | None:
    steps = [s for s in scenario.get("steps", []) if s.get("role") == role]
    exact = [s for s in steps if s.get("round") == round_]
    anyround = [s for s in steps if "round" not in s]
    chosen: dict[str, Any] | None = (exact or anyround or [None])[0]
    return chosen


def _scenario(path: str) -> dict[str, Any]:
    import tomllib  # only a scenario needs it

    with open(path, "rb") as scenario:
        return tomllib.load(scenario)


def _inside(root: str, relative: str) -> Path:
    from pathlib import Path  # only a step with files needs it

    base = Path(root).resolve()
    target = (base / relative).resolve()
    if base not in target.parents:
        raise SystemExit(f"scripted agent: {relative!r} is outside the worktree")
    return target


def main() -> int:
    """Replay the step for this role and round; the exit status is the step's."""
    prompt = sys.stdin.read()  # read it whole, as a real agent would
    role = os.environ["ORCH_ROLE"]
    round_ = int(os.environ.get("ORCH_ROUND", "1"))
    artifact_path = os.environ["ORCH_ARTIFACT_PATH"]
    scenario_path = os.environ.get("ORCH_AGENT_SCENARIO")
    step = _step(_scenario(scenario_path), role, round_) if scenario_path else {}
    step = step or {}

    time.sleep(float(step.get("sleep", 0)))
    for relative, content in step.get("files", {}).items():
        target = _inside(os.getcwd(), relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        print(f"scripted {role}: wrote {relative}")

    if step.get("write_artifact", True):
        body = step.get("artifact") or (
            f"# {role} (round {round_})\n\n{DEFAULT_VERDICTS.get(role, '')}\n"
        )
        os.makedirs(os.path.dirname(artifact_path) or ".", exist_ok=True)
        with open(artifact_path, "w", encoding="utf-8") as artifact:
            artifact.write(LABEL + body.lstrip("\n"))
        name = os.path.basename(artifact_path)
        print(f"scripted {role}: wrote {name} ({len(prompt)} characters of prompt)")
    return int(step.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
