"""Secrets are masked before anything is stored."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.redact import MASK, StreamRedactor, redact, secret_values
from orchestrator.settings import load_settings


def test_token_webhook_and_database_password_are_masked() -> None:
    settings = load_settings(
        api_token="tok-1234567890abcdef",
        alert_webhook_url="https://hooks.example/T0/B1/secret",
        db_url="postgresql+psycopg://orch:p%40ss-word@db:5432/orch",
    )
    secrets = secret_values(settings, environ={})
    text = "tok-1234567890abcdef https://hooks.example/T0/B1/secret p@ss-word p%40ss-word kept"
    assert redact(text, secrets) == f"{MASK} {MASK} {MASK} {MASK} kept"


def test_nothing_to_mask_without_secrets() -> None:
    assert secret_values(load_settings(), environ={"HOME": "/home/someone", "DEBUG": "1"}) == ()
    assert redact("plain text", ()) == "plain text"


def test_secret_looking_variables_of_the_agents_environment_are_masked_too() -> None:
    environ = {
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ANTHROPIC_API_KEY": "sk-ant-0123456789",
        "GITHUB_TOKEN": "ghp_abcdefghijklmnop",
        "DB_PASSWORD": "correct horse",
        "SHORT_TOKEN": "1",  # too short to be a secret: masking it would garble every text
        "GIT_AUTHOR_NAME": "Orch Test",
        "PATH": "/usr/bin:/bin",
    }
    secrets = secret_values(load_settings(), environ=environ)
    text = "\n".join(f"{k}={v}" for k, v in environ.items())
    masked = redact(text, secrets)
    for name in ("AWS_SECRET_ACCESS_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD"):
        assert f"{name}={MASK}" in masked and environ[name] not in masked
    assert "SHORT_TOKEN=1" in masked and "GIT_AUTHOR_NAME=Orch Test" in masked
    assert "PATH=/usr/bin:/bin" in masked


def test_the_generated_api_token_is_masked(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    (tmp_path / "api-token").write_text("generated-token-0123456789abcdef\n")
    assert "generated-token-0123456789abcdef" in secret_values(settings, environ={})


# --- a stream, masked a chunk at a time (the log of a child process) ---------------------------

SECRET_TEXT = st.text(alphabet="xyz", min_size=4, max_size=12)


@given(
    secrets=st.lists(SECRET_TEXT, min_size=1, max_size=3),
    words=st.lists(st.one_of(SECRET_TEXT, st.text(alphabet="xyz -", max_size=8)), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_a_stream_cut_anywhere_is_masked_as_the_whole_text_is(
    secrets: list[str], words: list[str], cuts: list[int]
) -> None:
    text = " ".join(words).encode()
    ordered = tuple(sorted(set(secrets), key=len, reverse=True))
    redactor = StreamRedactor(ordered)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    out = b"".join(redactor.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    out += redactor.flush()
    assert out.decode() == redact(text.decode(), ordered)


def test_no_secret_passes_through_the_stream_as_it_is() -> None:
    redactor = StreamRedactor(("hunter2-hunter2",))
    out = redactor.feed(b"pass: hunter2") + redactor.feed(b"-hunter2 ok\n") + redactor.flush()
    assert out == b"pass: [redacted] ok\n"
    assert StreamRedactor(()).feed(b"as it is") == b"as it is"


def test_only_an_end_that_begins_a_secret_is_held_back() -> None:
    redactor = StreamRedactor(("hunter2-hunter2",))
    assert redactor.feed(b"line one\n") == b"line one\n"  # written at once: a live log
    assert redactor.feed(b"pass: hunt") == b"pass: "  # "hunt" may begin the secret
    assert redactor.feed(b"ing season\n") == b"hunting season\n"  # it did not
