"""A command-line agent that follows only the documented contract (for tests).

It reads its prompt on stdin, works in its cwd (the task worktree), and writes its artifact
to $ORCH_ARTIFACT_PATH. It keeps every prompt it received next to the artifacts so that tests
can read what the orchestrator told it. Behaviour, from the environment:

- FAKE_AGENT_SLEEP: seconds to take (default 0)
- FAKE_AGENT_REVIEW_REJECTS: the reviewer answers CHANGES_REQUESTED in rounds up to this one
- FAKE_AGENT_SPAWN_CHILD: start a grandchild that sleeps (to test tree kills)
- FAKE_AGENT_SUMMARY_FAILS: the failure summarizer (A7) exits 1 without a note
- FAKE_AGENT_RUN_LOG: append "task stage round pid start end" for every run (to count
  double runs and to see which runs overlapped)
"""

import os
import subprocess
import sys
import time
from pathlib import Path

VERDICTS = {
    "analyst": "analysis_status: READY",
    "architect": "design_status: READY",
    "developer": "dev_status: DONE",
    "reviewer": "review_verdict: APPROVED",
    "tester": "result: PASS\nstatus: PASS\ntests_failed: 0",
    "deployer": "staging_status: PASSED",
    "summarizer": "FAKE-SUMMARY-NOTE: the review asks for one rename.",
}


def main() -> int:
    started = time.time()
    prompt = sys.stdin.read()
    role, round_ = os.environ["ORCH_ROLE"], int(os.environ["ORCH_ROUND"])
    folder = Path(os.environ["ORCH_ARTIFACT_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"prompt-{role}-r{round_}.txt").write_text(prompt)
    if os.environ.get("FAKE_AGENT_SPAWN_CHILD"):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    time.sleep(float(os.environ.get("FAKE_AGENT_SLEEP", "0")))
    if role == "summarizer" and os.environ.get("FAKE_AGENT_SUMMARY_FAILS"):
        print("summarizer: model unavailable", file=sys.stderr)
        return 1

    verdict = VERDICTS[role]
    if role == "reviewer" and round_ <= int(os.environ.get("FAKE_AGENT_REVIEW_REJECTS", "0")):
        verdict = "review_verdict: CHANGES_REQUESTED\n\n- rename `x` to `total` (FAKE-REVIEW-NOTE)"
    if role == "developer":
        work = Path.cwd() / "work.txt"
        with work.open("a") as out:
            out.write(f"round {round_} by the developer\n")
    artifact = f"# {role} round {round_}\n\n{verdict}\n"
    Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(artifact)
    if os.environ.get("FAKE_AGENT_RUN_LOG"):
        with open(os.environ["FAKE_AGENT_RUN_LOG"], "a") as runs:
            task, stage = os.environ["ORCH_TASK_ID"], os.environ["ORCH_STAGE"]
            runs.write(f"{task} {stage} {round_} {os.getpid()} {started} {time.time()}\n")
    print(f"{role}: done (args: {' '.join(sys.argv[1:])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
