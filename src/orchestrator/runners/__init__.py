"""Deterministic runners: code that produces the verdicts an LLM agent used to write."""
