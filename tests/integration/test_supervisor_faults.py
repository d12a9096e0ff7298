"""The supervisor never leaves the service down because the database failed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.proc.service import stop_service
from orchestrator.selfhost import supervisor as supervisor_module
from orchestrator.selfhost.supervisor import ROLLBACK_ATTEMPTS, Supervisor
from orchestrator.settings import load_settings
from orchestrator.store import SelfDeploy, Store
from orchestrator.store.base import utcnow
from tests.helpers import SILENT_SERVICE

DEPLOY = SelfDeploy(
    id=1,
    task_id="k3m9qz2a",
    job_id=1,
    attempt=1,
    old_commit="a" * 40,
    merged_commit="b" * 40,
    new_commit=None,
    revert_commit=None,
    note="",
    command_running=False,
    state="pending",
    reason=None,
    created_at=utcnow(),
    completed_at=None,
)


def supervisor(store: Store, orch_home: Path, db_url: str) -> Supervisor:
    settings = load_settings(
        home=orch_home, db_url=db_url, self_start_timeout_s=0.3, kill_grace_s=0.5
    )
    return Supervisor(store, settings, SILENT_SERVICE, "http://127.0.0.1:9/health")


def test_a_rollback_the_database_refuses_is_tried_again_and_the_service_restarted(
    store: Store, orch_home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[str] = []

    def refused(*_args: object) -> bool:
        tries.append("roll back")
        raise StoreError("database is locked")

    monkeypatch.setattr(supervisor_module, "roll_back", refused)
    monkeypatch.setattr(supervisor_module, "ROLLBACK_RETRY_S", 0.0)
    boss = supervisor(store, orch_home, db_url)
    try:
        boss._after_restart(DEPLOY)
        assert len(tries) == ROLLBACK_ATTEMPTS
        assert boss.child is not None and boss.child.poll() is None  # the service is up
    finally:
        if boss.child is not None:
            stop_service(boss.child, 1.0)


def test_pending_deploys_the_database_cannot_list_are_none_not_a_crash(
    store: Store, orch_home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_states: str) -> list[SelfDeploy]:
        raise StoreError("database unavailable")

    monkeypatch.setattr(store, "self_deploys", unreachable)
    assert supervisor(store, orch_home, db_url)._pending() == []
