"""The smoke check's /queue contract: the serial gate as the API documents it (SPEC 15)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.runners.smoke import serial_gate_problem


@pytest.mark.parametrize(
    "queue",
    [
        {"serial_gate": {}},
        {"serial_gate": {"app": {"holder": None, "waiting": []}}},
        {"serial_gate": {"app": {"holder": "k3m9qz2a", "waiting": ["abcd2345"], "since": "x"}}},
        {
            "running": [],
            "serial_gate": {
                "a": {"holder": None, "waiting": []},
                "b": {"holder": "k3m9qz2a", "waiting": []},
            },
        },
    ],
)
def test_well_formed_serial_gate(queue: Any) -> None:
    assert serial_gate_problem(queue) is None


@pytest.mark.parametrize(
    ("queue", "problem"),
    [
        (None, "no serial_gate"),
        ([], "no serial_gate"),
        ({}, "no serial_gate"),
        ({"running": []}, "no serial_gate"),
        ({"serial_gate": []}, "not an object"),
        ({"serial_gate": None}, "not an object"),
        ({"serial_gate": {"app": "busy"}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"holder": None}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"waiting": []}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"owner": None}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"holder": None, "queue": []}}}, "lacks holder or waiting"),
        ({"serial_gate": {"app": {"holder": 7, "waiting": []}}}, "holder is not a task id"),
        ({"serial_gate": {"app": {"holder": None, "waiting": "x"}}}, "waiting is not a list"),
    ],
)
def test_malformed_serial_gate_is_named(queue: Any, problem: str) -> None:
    found = serial_gate_problem(queue)
    assert found is not None and problem in found


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["holder", "waiting", "serial_gate", "x"]), inner)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["serial_gate", "running"]), _JSON) | _JSON)
def test_serial_gate_check_answers_for_any_json_document(queue: Any) -> None:
    problem = serial_gate_problem(json.loads(json.dumps(queue)))
    assert problem is None or problem.strip()
