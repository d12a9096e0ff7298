"""A fake `codex` CLI printing `codex exec --json` JSONL events (for tests).

FAKE_CODEX_MODE: ok (default), turn_failed, auth, rate_limited, malformed, crash, hang,
no_artifact (a completed turn, but no artifact written), reconnect (error events that are only
notices, then ok), two_turns (usage is summed).
"""

import json
import os
import sys
import time
from pathlib import Path


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def turn(tokens_in: int, cached: int, tokens_out: int) -> None:
    emit({"type": "turn.started"})
    emit({"type": "item.completed", "item": {"id": "i1", "type": "agent_message", "text": "Done."}})
    emit(
        {
            "type": "turn.completed",
            "usage": {
                "input_tokens": tokens_in,
                "cached_input_tokens": cached,
                "output_tokens": tokens_out,
            },
        }
    )


def main() -> int:
    prompt = sys.stdin.read()
    assert sys.argv[1:3] == ["exec", "--json"] and sys.argv[-1] == "-", sys.argv
    assert "-C" in sys.argv and "--sandbox" in sys.argv, sys.argv
    assert prompt and prompt not in " ".join(sys.argv)
    mode = os.environ.get("FAKE_CODEX_MODE", "ok")
    emit({"type": "thread.started", "thread_id": "th_1"})
    if mode == "malformed":
        print("garbage", flush=True)
        return 0
    if mode == "crash":
        return 2
    if mode == "hang":
        time.sleep(600)
    if mode == "reconnect":
        emit({"type": "error", "message": "Reconnecting... 1/5"})
    if mode == "rate_limited":  # codex's own words after its retries give up
        emit({"type": "error", "message": "Reconnecting... 5/5"})
        message = "exceeded retry limit, last status: 429 Too Many Requests"
        emit({"type": "turn.failed", "error": {"message": message}})
        return 1
    if mode in ("turn_failed", "auth"):
        message = "401 Unauthorized: invalid api key" if mode == "auth" else "model refused"
        emit({"type": "turn.failed", "error": {"message": message}})
        return 1
    turn(1000, 400, 250)
    if mode == "two_turns":
        turn(500, 100, 50)
    if mode == "no_artifact":
        return 0
    Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text("# analysis\n\nanalysis_status: READY\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
