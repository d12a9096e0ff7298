"""Markdown to HTML for artifacts: CommonMark with raw HTML escaped (artifacts are untrusted)."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt


@cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_html(text: str) -> str:
    """Render Markdown; any HTML in the text comes out escaped, never as markup."""
    return str(_renderer().render(text))
