"""The pure pipeline model: stages, transitions, gates and verdict parsing. No I/O here."""

from orchestrator.pipeline.gates import (
    GateResult,
    GateStatus,
    check_staging_status,
    check_tests_passed,
    run_gate,
)
from orchestrator.pipeline.stages import (
    STAGE_ORDER,
    STAGE_TRANSITIONS,
    Producer,
    Stage,
    StageSpec,
    TaskState,
)
from orchestrator.pipeline.transitions import Transition, decide_transition, next_stage

__all__ = [
    "STAGE_ORDER",
    "STAGE_TRANSITIONS",
    "GateResult",
    "GateStatus",
    "Producer",
    "Stage",
    "StageSpec",
    "TaskState",
    "Transition",
    "check_staging_status",
    "check_tests_passed",
    "decide_transition",
    "next_stage",
    "run_gate",
]
