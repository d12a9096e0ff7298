"""The API's door as a pure decision: Host, token, Origin and size, from plain values."""

from __future__ import annotations

import pytest

from orchestrator.api.guard import LOOPBACK_NAMES, Policy, decide, given_token, host_name

TOKEN = "a-token-of-32-characters-or-so!!"
LOOPBACK = Policy(TOKEN, LOOPBACK_NAMES, False, False, 1_000_000)
EXPOSED = Policy(TOKEN, LOOPBACK_NAMES | {"orch.example.com"}, True, True, 1_000_000)


def request(**headers: str) -> dict[str, str]:
    return {"host": "127.0.0.1:8765", **{k.replace("_", "-"): v for k, v in headers.items()}}


AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8765", "::1"),
        ("::1", "::1"),
        ("evil.example:80", "evil.example"),
        ("", ""),
    ],
)
def test_host_name_drops_the_port_and_the_brackets(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8765", "", "10.0.0.5"])
def test_a_loopback_server_answers_no_other_name(host: str) -> None:
    refusal = decide("GET", "/status", {"host": host}, LOOPBACK)
    assert refusal is not None and refusal.status == 403 and "ORCH_ALLOWED_HOSTS" in refusal.error


def test_a_wildcard_bind_answers_ip_literals_and_configured_names_only() -> None:
    for host in ("10.0.0.5:8765", "orch.example.com", "[fe80::1]:8765"):
        assert decide("GET", "/status", {"host": host, **AUTH}, EXPOSED) is None
    refusal = decide("GET", "/status", {"host": "rebound.attacker.example", **AUTH}, EXPOSED)
    assert refusal is not None and refusal.status == 403


def test_reads_are_open_on_loopback_and_writes_always_need_the_token() -> None:
    assert decide("GET", "/tasks", request(), LOOPBACK) is None
    refusal = decide("POST", "/tasks", request(), LOOPBACK)
    assert refusal is not None and refusal.status == 401
    assert ("www-authenticate", "Bearer") in refusal.headers
    wrong = decide("POST", "/tasks", request(authorization="Bearer nope"), LOOPBACK)
    assert wrong is not None and wrong.status == 401
    assert decide("POST", "/tasks", request(**AUTH), LOOPBACK) is None


def test_on_an_exposed_bind_reads_need_the_token_too_but_health_does_not() -> None:
    refusal = decide("GET", "/tasks/abc/logs", {"host": "10.0.0.5"}, EXPOSED)
    assert refusal is not None and refusal.status == 401 and "reads" in refusal.error
    assert decide("GET", "/health", {"host": "10.0.0.5"}, EXPOSED) is None
    cookie = {"host": "10.0.0.5", "cookie": f"theme=dark; orch_token={TOKEN}"}
    assert decide("GET", "/ui/tasks", cookie, EXPOSED) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"origin": "http://attacker.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:9999"},  # a page on another local port: another site
        {"sec_fetch_site": "cross-site"},
    ],
)
def test_a_write_from_another_origin_is_refused_even_with_the_token(extra: dict[str, str]) -> None:
    refusal = decide("POST", "/tasks/abc/cancel", request(**AUTH, **extra), LOOPBACK)
    assert refusal is not None and refusal.status == 403


def test_a_write_from_the_servers_own_page_passes() -> None:
    own = request(**AUTH, origin="http://127.0.0.1:8765", sec_fetch_site="same-origin")
    assert decide("POST", "/tasks", own, LOOPBACK) is None


def test_the_token_is_checked_before_the_size_and_a_declared_size_over_the_cap_is_413() -> None:
    huge = {"content_length": str(100 * 1024 * 1024)}
    refusal = decide("POST", "/tasks", request(**huge), LOOPBACK)
    assert refusal is not None and refusal.status == 401
    refusal = decide("POST", "/tasks", request(**AUTH, **huge), LOOPBACK)
    assert refusal is not None and refusal.status == 413 and "ORCH_MAX_BODY_BYTES" in refusal.error
    bogus = decide("POST", "/tasks", request(**AUTH, content_length="-1"), LOOPBACK)
    assert bogus is not None and bogus.status == 413


def test_given_token_reads_the_bearer_header_or_the_cookie_and_survives_a_bad_cookie() -> None:
    assert given_token({"authorization": "bearer  xyz "}) == "xyz"
    assert given_token({"cookie": "orch_token=abc"}) == "abc"
    assert given_token({"cookie": '"\\'}) is None
    assert given_token({}) is None
