"""A task's pipeline: the built-in stage table, or the one its repo declares in `orch.toml`.

A repo may list, at the root of its default branch, which stages its tasks run and in which
order, with two kinds of its own: a `check` (a command run by code in the worktree) and an
`approval` (a person's verdict). The file is read when a task starts and stored with it, so
an agent that edits `orch.toml` in its branch changes nothing for its own task.

Pure: the text in, a validated `Pipeline` or one `PipelineError` line out.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.errors import InputError
from orchestrator.pipeline.stages import (
    STAGE_TRANSITIONS,
    Outcome,
    Stage,
    StageKind,
    StageSpec,
    TaskState,
)

PIPELINE_FILE = "orch.toml"
MAX_STAGES = 30  # artifacts are numbered 01-99
CHECK_TIMEOUT_S = 600.0
CHECK_TIMEOUT_MAX_S = 86_400.0
STAGE_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
# Words that name where a task ends up (events record them as `to_stage`), never a stage.
_TAKEN = frozenset(s.value for s in TaskState) | {"intake"}
_ON_FAIL = {"development": Outcome.ROLLBACK, "blocked": Outcome.BLOCKED, "failed": Outcome.FAILED}
_KEYS = {
    StageKind.BUILT_IN: {"name"},
    StageKind.CHECK: {"name", "kind", "command", "timeout_s", "on_fail"},
    StageKind.APPROVAL: {"name", "kind", "on_fail"},
}
# Where a built-in stage needs another before it: what it judges or ships.
_NEEDS = {
    Stage.DEPLOY_STAGING: Stage.TESTING,  # stages what testing judged
    Stage.DEPLOY: Stage.TESTING,  # ships exactly what testing judged
    Stage.POST_DEPLOY: Stage.DEPLOY,  # watches what the deploy shipped
}
CHECK_LINES = (("check_status: PASS",), ("check_status: FAIL",))
APPROVAL_LINES = (("approval_status: APPROVED",), ("approval_status: REJECTED",))


class PipelineError(InputError):
    """An `orch.toml` that cannot be a pipeline; the message is one line naming the problem."""


@dataclass(frozen=True)
class Pipeline:
    """The stages a task runs, in order; each spec's `on_pass` names the one after it."""

    specs: tuple[StageSpec, ...]
    declared: bool = False  # True when the repo's orch.toml gave it

    @property
    def order(self) -> tuple[str, ...]:
        """The stage names, in order."""
        return tuple(spec.stage for spec in self.specs)

    @property
    def first(self) -> str:
        """Where a new task starts."""
        return self.specs[0].stage

    def __iter__(self) -> Iterator[StageSpec]:
        return iter(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.order

    def spec(self, name: str) -> StageSpec:
        """The row of stage `name`; KeyError when the pipeline has no such stage."""
        for spec in self.specs:
            if spec.stage == name:
                return spec
        raise KeyError(name)

    def index(self, name: str) -> int:
        """The position of stage `name` (ValueError when it is not in the pipeline)."""
        return self.order.index(name)

    def next_stage(self, after: str, skipped: Set[str] = frozenset()) -> str | None:
        """The stage that follows `after`, passing over switched-off stages; None: done."""
        candidate = self.spec(after).on_pass
        while candidate is not None and candidate in skipped:
            candidate = self.spec(candidate).on_pass
        return candidate

    def start(self, skipped: Set[str] = frozenset()) -> str:
        """Where a new task starts: the first stage its repo does not switch off."""
        for name in self.order:
            if name not in skipped:
                return name
        raise PipelineError("every stage of the pipeline is switched off for the repo")

    def to_json(self) -> str | None:
        """The stored form: the file's stages as written (None for the built-in pipeline)."""
        if not self.declared:
            return None
        return json.dumps([_declared(spec) for spec in self.specs], separators=(",", ":"))

    @classmethod
    def from_json(cls, stored: str | None) -> Pipeline:
        """The pipeline a task keeps (`to_json`); None is the built-in pipeline."""
        return BUILT_IN if stored is None else _stored(stored)


BUILT_IN = Pipeline(tuple(STAGE_TRANSITIONS.values()))


@functools.lru_cache(maxsize=256)
def _stored(stored: str) -> Pipeline:
    # Every task row read parses its pipeline; the tasks of one repo share a handful.
    return _build(json.loads(stored))


def read_pipeline(text: str | None) -> Pipeline:
    """The pipeline an `orch.toml` declares (None: the repo has none, the built-in one)."""
    if text is None:
        return BUILT_IN
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{PIPELINE_FILE}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"stage"})
    if unknown:
        raise PipelineError(f"{PIPELINE_FILE}: unknown key {unknown[0]!r} (expected [[stage]])")
    entries = document.get("stage")
    if not isinstance(entries, list) or not entries:
        raise PipelineError(f"{PIPELINE_FILE}: no [[stage]]: a pipeline needs a path to done")
    if len(entries) > MAX_STAGES:
        raise PipelineError(f"{PIPELINE_FILE}: {len(entries)} stages, more than {MAX_STAGES}")
    return _build(entries)


def _build(entries: list[Any]) -> Pipeline:
    specs = [_entry(position, entry) for position, entry in enumerate(entries, 1)]
    _check_order(specs)
    chained = [
        replace(spec, on_pass=following.stage if following else None)
        for spec, following in zip(specs, [*specs[1:], None], strict=True)
    ]
    return Pipeline(tuple(_numbered(chained)), declared=True)


def _entry(position: int, entry: Any) -> StageSpec:
    where = f"{PIPELINE_FILE}: stage {position}"
    if not isinstance(entry, Mapping):
        raise PipelineError(f"{where}: expected a [[stage]] table")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise PipelineError(f"{where}: no name")
    where = f"{PIPELINE_FILE}: stage {name!r}"
    raw_kind = entry.get("kind")
    if raw_kind not in (None, StageKind.CHECK.value, StageKind.APPROVAL.value):
        raise PipelineError(f"{where}: unknown kind {raw_kind!r} (expected check or approval)")
    kind = StageKind.BUILT_IN if raw_kind is None else StageKind(raw_kind)
    unknown = sorted(set(entry) - _KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(_KEYS[kind]))
        raise PipelineError(f"{where}: unknown key {unknown[0]!r} (a {kind} stage takes {allowed})")
    if kind is StageKind.BUILT_IN:
        if name not in STAGE_TRANSITIONS:
            known = ", ".join(STAGE_TRANSITIONS)
            raise PipelineError(
                f"{where}: not a built-in stage ({known}); a stage of your own needs a kind"
            )
        return STAGE_TRANSITIONS[Stage(name)]
    if name in STAGE_TRANSITIONS or name in _TAKEN or not STAGE_NAME.fullmatch(name):
        raise PipelineError(
            f"{where}: a {kind} stage needs a name of its own: lower-case letters, digits and "
            "'-', at most 40, and not a built-in stage or a task state"
        )
    on_fail = entry.get("on_fail", "development")
    if not isinstance(on_fail, str) or on_fail not in _ON_FAIL:
        raise PipelineError(f"{where}: on_fail {on_fail!r} is not development, blocked or failed")
    if kind is StageKind.APPROVAL:
        return _own(name, kind, APPROVAL_LINES, _ON_FAIL[on_fail])
    return _check(where, name, entry, _ON_FAIL[on_fail])


def _check(where: str, name: str, entry: Mapping[str, Any], on_fail: Outcome) -> StageSpec:
    command = entry.get("command")
    if isinstance(command, str):
        raise PipelineError(f"{where}: command must be an argv list, never a shell string")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(arg, str) and arg and "\0" not in arg for arg in command)
    ):
        raise PipelineError(f"{where}: command must be a non-empty list of non-empty strings")
    timeout = entry.get("timeout_s", CHECK_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise PipelineError(f"{where}: timeout_s must be a number of seconds")
    if not 0 < timeout <= CHECK_TIMEOUT_MAX_S:
        raise PipelineError(
            f"{where}: timeout_s must be above 0 and at most {CHECK_TIMEOUT_MAX_S:g}"
        )
    spec = _own(name, StageKind.CHECK, CHECK_LINES, on_fail)
    return replace(spec, command=tuple(command), timeout_s=float(timeout))


def _own(
    name: str, kind: StageKind, lines: tuple[tuple[str, ...], tuple[str, ...]], on_fail: Outcome
) -> StageSpec:
    passing, failing = lines
    key, pass_word = passing[0].split(": ")
    fail_word = failing[0].split(": ")[1]
    return StageSpec(
        stage=name,
        llm_role=None,
        runner=None,
        artifact="",  # numbered once the order is known
        verdict_keys=(key,),
        on_pass=None,
        on_fail=on_fail,
        optional=False,
        pass_lines=passing,
        fail_lines=failing,
        pass_values=frozenset({pass_word}),
        fail_values=frozenset({fail_word}),
        kind=kind,
    )


def _check_order(specs: list[StageSpec]) -> None:
    seen: list[str] = []
    for spec in specs:
        where = f"{PIPELINE_FILE}: stage {str(spec.stage)!r}"
        if spec.stage in seen:
            raise PipelineError(f"{where} is listed twice")
        if seen and seen[-1] == Stage.POST_DEPLOY:
            raise PipelineError(
                f"{where} comes after post-deploy, which ends the task: it can never be reached"
            )
        built_ins = [s for s in seen if s in STAGE_TRANSITIONS]
        if spec.kind is StageKind.BUILT_IN:
            later = [s for s in built_ins if _rank(s) > _rank(spec.stage)]
            if later:
                raise PipelineError(
                    f"{where} comes after {later[0]}: built-in stages keep their order"
                )
            needed = _NEEDS.get(Stage(spec.stage))
            if needed is not None and needed not in seen:
                raise PipelineError(f"{where} needs {needed} before it (what it ships or watches)")
        elif Stage.DEPLOY in seen:
            raise PipelineError(
                f"{where} comes after deploy: the change has shipped, and it can no longer stop it"
            )
        elif spec.kind is StageKind.CHECK and Stage.DEPLOY_STAGING in seen:
            # From deploy-staging on, a task holds its repo's serial gate; a check of the
            # repo's own is not under it (the staging command is the place for those).
            raise PipelineError(
                f"{where} comes after deploy-staging: a check there would run outside the "
                "repo's serial gate (put it before deploy-staging)"
            )
        if spec.on_fail is Outcome.ROLLBACK and Stage.DEVELOPMENT not in seen:
            raise PipelineError(
                f"{where} sends a failure back to development, which does not come before it "
                '(on_fail = "blocked" or "failed" stops there instead)'
            )
        seen.append(spec.stage)


def _rank(name: str) -> int:
    return list(STAGE_TRANSITIONS).index(Stage(name))


def _numbered(specs: list[StageSpec]) -> Iterator[StageSpec]:
    """Give each stage of a repo's own its artifact, numbered after the stage before it
    (`11-lint.md` after `10-development.md`) and never a built-in stage's name. Views list a
    task's artifacts in the order they were first written, which is the pipeline's."""
    taken = {spec.artifact for spec in STAGE_TRANSITIONS.values()}
    number = 1
    for spec in specs:
        if spec.kind is StageKind.BUILT_IN:
            number = int(spec.artifact[:2])
            yield spec
            continue
        number += 1
        while f"{number:02d}-{spec.stage}.md" in taken:  # `code-review` after development
            number += 1
        yield replace(spec, artifact=f"{number:02d}-{spec.stage}.md")


def _declared(spec: StageSpec) -> dict[str, Any]:
    """A stage as `orch.toml` would declare it (what a task stores)."""
    if spec.kind is StageKind.BUILT_IN:
        return {"name": spec.stage}
    on_fail = next(word for word, outcome in _ON_FAIL.items() if outcome is spec.on_fail)
    entry: dict[str, Any] = {"name": spec.stage, "kind": spec.kind.value, "on_fail": on_fail}
    if spec.kind is StageKind.CHECK:
        entry |= {"command": list(spec.command), "timeout_s": spec.timeout_s}
    return entry
