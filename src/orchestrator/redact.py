"""Secrets never reach stored logs, artifacts or messages: they are replaced before storing."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from orchestrator.settings import Settings

MASK = "[redacted]"


def secret_values(settings: Settings) -> tuple[str, ...]:
    """The secret strings of this configuration (the token, the database password, the hook)."""
    values: list[str] = []
    if settings.token:
        values.append(settings.token)
    if settings.alert_webhook_url:
        values.append(settings.alert_webhook_url)
    if settings.db_url:
        password = urlsplit(settings.db_url).password
        if password:
            values.extend({password, unquote(password)})
    # Longest first, so that a secret containing another is masked whole.
    return tuple(sorted((v for v in values if len(v) >= 4), key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by a mask."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
