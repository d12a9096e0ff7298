"""Telling an agent's auth and rate-limit failures apart from the rest.

`auth` is never retried, so a false `auth` turns a passing blip into a blocked task. The
backends' structured fields (an HTTP status, an error type) decide first; the agent's words
are read only when there are none, and then only whole words and status codes in context:
"error 4010" or "the authentication module crashed" are ordinary agent errors.
"""

from __future__ import annotations

import re

from orchestrator.transport.types import ErrorKind

# The HTTP statuses the providers answer with, when the stream reports one.
STATUS_KINDS = {
    401: ErrorKind.AUTH,
    429: ErrorKind.RATE_LIMITED,
    529: ErrorKind.RATE_LIMITED,  # Anthropic's "overloaded"
}

# Claude Code's `error` field on an assistant event (an API error it gave up on).
ERROR_TYPE_KINDS = {
    "authentication_failed": ErrorKind.AUTH,
    "oauth_org_not_allowed": ErrorKind.AUTH,
    "rate_limit": ErrorKind.RATE_LIMITED,
    "overloaded": ErrorKind.RATE_LIMITED,
    "billing_error": ErrorKind.RATE_LIMITED,  # out of credit: a quota, as `rate_limited` says
}


def _status(codes: str) -> str:
    """A status code as a status: after "status", "HTTP", "error" or "API Error", not a digit
    run that merely contains it."""
    return rf"\b(?:api error|error|http(?:/\d(?:\.\d)?)?|status(?: code)?)\s*:?\s*(?:{codes})\b"


AUTH_WORDS = re.compile(
    "|".join(
        (
            r"\binvalid api key\b",
            r"\binvalid x-api-key\b",
            r"\binvalid authentication credentials\b",
            r"\bplease run /login\b",
            r"\bnot logged in\b",
            r"\bauthentication_(?:error|failed)\b",
            r"\bauthentication (?:failed|required)\b",
            r"\boauth token (?:has )?(?:expired|is invalid|revoked)\b",
            r"\b401 unauthori[sz]ed\b",
            _status("401"),
        )
    ),
    re.IGNORECASE,
)
RATE_WORDS = re.compile(
    "|".join(
        (
            r"\brate[ _-]limit(?:ed|s|_error)?\b",
            r"\boverloaded(?:_error)?\b",
            r"\b(?:usage|session) limit\b",
            r"\binsufficient_quota\b",
            r"\bexceeded your (?:current )?quota\b",
            r"(?<!disk )\bquota exceeded\b",  # Codex's words for OpenAI's insufficient_quota
            r"\b429 too many requests\b",
            _status("429|529"),
        )
    ),
    re.IGNORECASE,
)


def classify_message(message: str, default: ErrorKind = ErrorKind.AGENT_ERROR) -> ErrorKind:
    """Auth and rate-limit failures by the agent's own words; `default` for the rest."""
    if AUTH_WORDS.search(message):
        return ErrorKind.AUTH
    if RATE_WORDS.search(message):
        return ErrorKind.RATE_LIMITED
    return default


def classify(
    message: str,
    *,
    status: object = None,
    error_type: object = None,
    default: ErrorKind = ErrorKind.AGENT_ERROR,
) -> ErrorKind:
    """The kind of a failed call: a structured status or error type first, then the words."""
    if isinstance(status, int) and not isinstance(status, bool) and status in STATUS_KINDS:
        return STATUS_KINDS[status]
    if isinstance(error_type, str) and error_type in ERROR_TYPE_KINDS:
        return ERROR_TYPE_KINDS[error_type]
    return classify_message(message, default)
