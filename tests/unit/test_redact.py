"""Secrets are masked before anything is stored."""

from __future__ import annotations

from orchestrator.redact import MASK, redact, secret_values
from orchestrator.settings import load_settings


def test_token_webhook_and_database_password_are_masked() -> None:
    settings = load_settings(
        api_token="tok-123456",
        alert_webhook_url="https://hooks.example/T0/B1/secret",
        db_url="postgresql+psycopg://orch:p%40ss-word@db:5432/orch",
    )
    secrets = secret_values(settings)
    text = "tok-123456 https://hooks.example/T0/B1/secret p@ss-word p%40ss-word kept"
    assert redact(text, secrets) == f"{MASK} {MASK} {MASK} {MASK} kept"


def test_nothing_to_mask_without_secrets() -> None:
    assert secret_values(load_settings()) == ()
    assert redact("plain text", ()) == "plain text"
