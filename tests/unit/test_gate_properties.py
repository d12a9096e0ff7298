"""Properties of every gate in the gates table (SPEC section 3): they fail closed.

Whatever an artifact holds around its verdict lines, a gate passes only on a well-formed,
unfenced, column-0 passing line, and a second unfenced line that disagrees stops the pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.pipeline.gates import GATES
from orchestrator.pipeline.stages import Stage
from tests.unit.verdict_texts import (
    INDENTS,
    NEWLINES,
    embed,
    fenced_block,
    key_lines,
    one_line,
    prose,
    texts_without_an_unfenced,
)


@dataclass(frozen=True)
class Gate:
    """A gate's row of the SPEC section 3 table: the keys it reads (the first decides), its
    passing and failing words, and the other lines a passing artifact may carry."""

    keys: tuple[str, ...]
    passing: tuple[str, ...]
    failing: tuple[str, ...]
    agreeing: tuple[str, ...] = ()  # lines that must come with the pass (the tests gate)
    disagreeing: tuple[str, ...] = ()  # lines of the other keys that contradict a pass

    @property
    def key(self) -> str:
        return self.keys[0]

    def block(self, word: str) -> list[str]:
        """A well-formed passing block, as a runner or an agent writes it."""
        return [f"{self.key}: {word}", *self.agreeing]

    def conflicts(self, word: str) -> list[str]:
        """Unfenced lines that, next to the passing block, must stop the pass."""
        others = [w for w in (*self.passing, *self.failing, "MAYBE") if w != word]
        return [f"{self.key}: {w}" for w in others] + list(self.disagreeing)


def single(key: str, passing: tuple[str, ...], failing: tuple[str, ...]) -> Gate:
    return Gate((key,), passing, failing)


SPEC_GATES = {
    Stage.ANALYSIS: single("analysis_status", ("READY",), ("BLOCKED",)),
    Stage.DESIGN: single("design_status", ("READY",), ("BLOCKED",)),
    Stage.DEVELOPMENT: single("dev_status", ("DONE",), ("BLOCKED",)),
    Stage.REVIEW: single("review_verdict", ("APPROVED",), ("CHANGES_REQUESTED",)),
    Stage.TESTING: Gate(
        ("result", "status", "tests_failed"),
        ("PASS",),
        ("FAIL",),
        agreeing=("status: PASS", "tests_failed: 0"),
        disagreeing=("status: FAIL", "status: MAYBE", "tests_failed: 1", "tests_failed: x"),
    ),
    Stage.DEPLOY_STAGING: single("staging_status", ("PASSED",), ("FAILED",)),
    Stage.DEPLOY: single("deploy_status", ("DEPLOYED",), ("FAILED",)),
    Stage.POST_DEPLOY: single("monitor_status", ("HEALTHY", "SKIPPED"), ("UNHEALTHY",)),
}
EVERY_GATE = pytest.mark.parametrize("stage", list(SPEC_GATES), ids=str)
# Eight gates share one reader, so each gate's 100 examples add up to 800 for the reader.
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, database=None)


def test_every_gate_of_the_gates_table_has_a_row_here() -> None:
    assert set(SPEC_GATES) == set(GATES) == set(Stage)


@EVERY_GATE
@PROPERTY_SETTINGS
@given(data=st.data())
def test_text_without_an_unfenced_column_0_pass_line_never_passes(
    data: st.DataObject, stage: Stage
) -> None:
    spec = SPEC_GATES[stage]
    text = data.draw(texts_without_an_unfenced(spec.key, spec.passing))
    assert not GATES[stage](text).passed


@EVERY_GATE
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_passing_block_in_prose_always_passes(data: st.DataObject, stage: Stage) -> None:
    spec = SPEC_GATES[stage]
    block = spec.block(data.draw(st.sampled_from(spec.passing)))
    text = data.draw(NEWLINES).join(embed(data.draw, block, spec.keys))
    assert GATES[stage](text).passed


@EVERY_GATE
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_passing_block_in_a_fence_or_indented_never_passes(
    data: st.DataObject, stage: Stage
) -> None:
    spec = SPEC_GATES[stage]
    block = spec.block(data.draw(st.sampled_from(spec.passing)))
    if data.draw(st.booleans()):
        char = data.draw(st.sampled_from("`~"))
        length = data.draw(st.integers(3, 5))
        indent = " " * data.draw(st.integers(0, 3))
        opener = indent + char * length + data.draw(st.sampled_from(["", "text", " md"]))
        unclosed_or_closer = ["", char * length, "   " + char * (length + 1)]
        hidden = [opener, *block, data.draw(st.sampled_from(unclosed_or_closer))]
    else:
        hidden = [data.draw(st.sampled_from([*INDENTS, "     "])) + line for line in block]
    assert not GATES[stage]("\n".join(embed(data.draw, hidden, spec.keys))).passed


@EVERY_GATE
@PROPERTY_SETTINGS
@given(data=st.data())
def test_an_unfenced_disagreeing_line_anywhere_stops_a_pass(
    data: st.DataObject, stage: Stage
) -> None:
    spec = SPEC_GATES[stage]
    word = data.draw(st.sampled_from(spec.passing))
    lines = embed(data.draw, spec.block(word), spec.keys)
    key, value = data.draw(st.sampled_from(spec.conflicts(word))).split(": ")
    value = data.draw(st.sampled_from([value, value.lower(), f" {value.title()} "]))
    spacing = data.draw(st.sampled_from(["", " ", "  "]))
    lines.insert(data.draw(st.integers(0, len(lines))), f"{key}:{spacing}{value}")
    assert not GATES[stage]("\n".join(lines)).passed


@EVERY_GATE
@PROPERTY_SETTINGS
@given(data=st.data())
def test_closed_fences_around_a_passing_block_hide_only_their_own_lines(
    data: st.DataObject, stage: Stage
) -> None:
    spec = SPEC_GATES[stage]
    word = data.draw(st.sampled_from(spec.passing))
    chunks = [[line] for line in embed(data.draw, spec.block(word), spec.keys)]
    hidden = st.one_of(prose, st.sampled_from(spec.conflicts(word)), key_lines(one_line))
    for _ in range(data.draw(st.integers(1, 3))):
        chunks.insert(data.draw(st.integers(0, len(chunks))), data.draw(fenced_block(hidden)))
    assert GATES[stage]("\n".join(line for chunk in chunks for line in chunk)).passed
