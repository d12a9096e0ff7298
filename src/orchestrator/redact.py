"""Secrets never reach stored logs, artifacts or messages: they are replaced before storing."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
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


class StreamRedactor:
    """Masks secrets in output read a chunk at a time (a child's pipe, into its log file).

    A secret may be cut in two by the reads: an end of the output that begins some secret is
    held back until the next chunk (or the end) shows whether the secret goes on. Only such an
    end is held, so a line that holds no secret's beginning is written at once (live logs).
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self._carry = b""
        self._mask = MASK.encode()

    def feed(self, chunk: bytes) -> bytes:
        """What of the output so far can be written, masked."""
        if not self._secrets:
            return chunk
        data = self._carry + chunk
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, self._mask)
        cut = len(data) - self._unfinished(data)
        written, self._carry = data[:cut], data[cut:]
        return written

    def flush(self) -> bytes:
        """The rest, at the end of the output (no secret can continue it any more)."""
        rest, self._carry = self._carry, b""
        return rest

    def _unfinished(self, data: bytes) -> int:
        """The length of the longest end of `data` that is the beginning of a secret."""
        longest = 0
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(data)), longest, -1):
                if data.endswith(secret[:size]):
                    longest = size
                    break
        return longest
