"""Markdown to HTML for artifacts: CommonMark with raw HTML escaped (artifacts are untrusted)."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt


@cache
def _renderer() -> MarkdownIt:
    # A line break is kept: an artifact's verdict lines ("result: PASS", "status: PASS") are one
    # paragraph in Markdown, and run together into a sentence without it.
    options = {"html": False, "linkify": False, "breaks": True}
    return MarkdownIt("commonmark", options).enable("table")


def markdown_html(text: str) -> str:
    """Render Markdown; any HTML in the text comes out escaped, never as markup."""
    return str(_renderer().render(text))
