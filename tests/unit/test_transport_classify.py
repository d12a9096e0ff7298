"""Auth and rate-limit failures told apart from the rest, by structured fields, then words."""

from __future__ import annotations

import json

import pytest

from orchestrator.transport import claude, codex
from orchestrator.transport.classify import classify, classify_message
from orchestrator.transport.types import ErrorKind

AUTH, RATE, OTHER = ErrorKind.AUTH, ErrorKind.RATE_LIMITED, ErrorKind.AGENT_ERROR


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        # the agents' real words for a bad login or key
        ("Invalid API key · Please run /login", AUTH),
        ('API Error: 401 {"type":"error","error":{"type":"authentication_error"}}', AUTH),
        ("Failed to authenticate. API Error: 401 invalid x-api-key", AUTH),
        ("unexpected status 401 Unauthorized: Missing bearer", AUTH),
        ("HTTP/1.1 401 Unauthorized", AUTH),
        ("Not logged in · Please run /login", AUTH),
        ("OAuth token has expired", AUTH),
        ("Invalid authentication credentials", AUTH),
        # and for a rate or quota refusal
        ("API Error: 429 rate_limit_error: Number of requests has exceeded your rate limit", RATE),
        ("exceeded retry limit, last status: 429 Too Many Requests", RATE),
        ('API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}', RATE),
        ("Claude AI usage limit reached|1760000000", RATE),
        ("You exceeded your current quota, please check your plan", RATE),
        ("Quota exceeded. Check your plan and billing details.", RATE),  # codex 0.169, 429
        ("rate-limited by the provider", RATE),
        # lookalikes: an agent's failure that merely mentions such words is retried
        ("error 4010", OTHER),
        ("the authentication module crashed", OTHER),
        ("I refactored authentication.py but the tests fail", OTHER),
        ("test_login failed at line 401 of app.py", OTHER),
        ("status 4011 from the build", OTHER),
        ("exit 1: disk quota exceeded", OTHER),
        ("the rate limiter test is flaky", OTHER),
        ("error 14290", OTHER),
        ("unauthorized_access_test failed", OTHER),
    ],
)
def test_classify_message(message: str, kind: ErrorKind) -> None:
    assert classify_message(message) is kind


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (401, None, AUTH),
        (429, None, RATE),
        (529, None, RATE),
        (None, "authentication_failed", AUTH),
        (None, "rate_limit", RATE),
        (None, "billing_error", RATE),
        (500, "server_error", OTHER),  # a status or type that says neither: the words decide
        ("401", None, OTHER),  # not an int: untrusted input is not a status
        (True, None, OTHER),
    ],
)
def test_structured_fields_decide_before_the_words(
    status: object, error_type: object, kind: ErrorKind
) -> None:
    assert classify("Request failed", status=status, error_type=error_type) is kind


def test_a_structured_status_overrides_misleading_words() -> None:
    assert classify("Invalid API key", status=429) is RATE


def line(**event: object) -> str:
    return json.dumps(event) + "\n"


FAILED = line(type="result", is_error=True, result="Request failed")


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        ([line(type="result", is_error=True, result="x", api_error_status=401)], AUTH),
        ([line(type="assistant", error="authentication_failed"), FAILED], AUTH),
        ([line(type="assistant", error="rate_limit"), FAILED], RATE),
        # an API error Claude Code recovered from, then an ordinary failure: not auth
        ([line(type="assistant", error="authentication_failed"), line(type="assistant"), FAILED],
         OTHER),
        ([line(type="result", is_error=True, result="error 4010: authentication crashed")], OTHER),
    ],
)  # fmt: skip
def test_claude_parse_reads_the_structured_error_fields(lines: list[str], kind: ErrorKind) -> None:
    assert claude.parse(lines, 1).kind is kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("unexpected status 401 Unauthorized", AUTH),
        ("You've hit your usage limit. Try again later", RATE),
        ("tool call failed: error 4010 in the authentication module", OTHER),
    ],
)
def test_codex_failures_are_read_the_same_way(message: str, kind: ErrorKind) -> None:
    failed = line(type="turn.failed", error={"message": message})
    assert codex.parse([failed], 1).kind is kind
