"""A fake `claude` CLI printing stream-json like Claude Code's print mode (for tests).

FAKE_CLAUDE_MODE picks the behaviour: ok (default), no_artifact, auth, rate_limited,
error_result, malformed, crash, hang, retry_notice (an intermediate error event, then ok),
status_401 (only the result's `api_error_status` says auth), session_limit (only the
assistant event's `error` field says rate limit), auth_lookalike (words that resemble an auth
error but are not one).
"""

import json
import os
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
}


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def result(text: str, *, is_error: bool = False, subtype: str = "success", **extra: object) -> None:
    emit(
        {
            **extra,
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": 1200,
            "num_turns": 3,
            "result": text,
            "session_id": "sess-123",
            "total_cost_usd": 0.0421,
            "usage": {
                "input_tokens": 1500,
                "output_tokens": 320,
                "cache_creation_input_tokens": 200,
                "cache_read_input_tokens": 9000,
            },
        }
    )


def main() -> int:
    prompt = sys.stdin.read()
    assert "-p" in sys.argv and "stream-json" in sys.argv, sys.argv
    assert prompt not in " ".join(sys.argv), "the prompt must never be in argv"
    mode = os.environ.get("FAKE_CLAUDE_MODE", "ok")
    Path(os.environ["ORCH_ARTIFACT_DIR"], "claude-env.json").write_text(
        json.dumps(dict(os.environ))
    )
    emit({"type": "system", "subtype": "init", "session_id": "sess-123", "tools": []})
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "working"}]}})
    if mode == "retry_notice":
        emit({"type": "system", "subtype": "api_retry", "error": "overloaded, retrying"})
        print("transient: connection reset, reconnecting", file=sys.stderr, flush=True)
    if mode == "hang":
        time.sleep(600)
    if mode == "crash":
        print("Segmentation fault", file=sys.stderr)
        return 139
    if mode == "malformed":
        print("{this is not json", flush=True)
        return 0
    if mode == "auth":
        result("Invalid API key · Please run /login", is_error=True)
        return 1
    if mode == "rate_limited":
        result(
            "API Error: 429 rate_limit_error: Number of requests has exceeded your rate limit",
            is_error=True,
        )
        return 1
    if mode == "status_401":
        result("Request failed", is_error=True, api_error_status=401)
        return 1
    if mode == "session_limit":  # Claude Code's synthetic message for an API error
        text = "You've hit your limit · resets 3pm"
        content = [{"type": "text", "text": text}]
        emit({"type": "assistant", "message": {"content": content}, "error": "rate_limit"})
        result(text, is_error=True)
        return 1
    if mode == "auth_lookalike":
        result("error 4010: the authentication module crashed", is_error=True)
        return 1
    if mode == "error_result":
        result("I could not finish", is_error=True, subtype="error_during_execution")
        return 1
    if mode != "no_artifact":
        role = os.environ.get("ORCH_ROLE", "analyst")
        verdict = VERDICTS.get(role, "analysis_status: READY")
        Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\n\n{verdict}\n")
    result("All done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
