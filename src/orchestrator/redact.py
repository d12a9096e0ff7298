"""Secrets never reach stored logs, artifacts or messages: they are replaced before storing."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from orchestrator.settings import TOKEN_FILE, Settings

MASK = "[redacted]"
# Variables whose names say they hold a secret. Agents get them (an agent needs its API key),
# but what an agent prints of them is masked before it is stored or served.
SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL",
    re.IGNORECASE,
)
# Shorter values ("1", "true") are not secrets, and masking them would garble every text.
MIN_SECRET_CHARS = 8


def secret_looking(environ: Mapping[str, str]) -> list[str]:
    """The values of the variables in `environ` whose names say they are secrets."""
    return [v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_CHARS]


def secret_values(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secret strings of this configuration (the API token, configured or generated, the
    database password, the hook) and of the environment the agents inherit (`environ`, by
    default ours)."""
    values = secret_looking(os.environ if environ is None else environ)
    if settings.token:
        values.append(settings.token)
    with contextlib.suppress(OSError):  # no token generated yet
        values.append((settings.home / TOKEN_FILE).read_text(encoding="utf-8").strip())
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
