"""The merge queue's order at the store, on both backends: the serial gate goes by task age,
and the test-runner is told which tasks will merge before the one it tests."""

from __future__ import annotations

from orchestrator.pipeline.stages import Stage
from orchestrator.store import Store
from tests.integration.test_leases import HERE, add_task, move_to


def stages_claimed(store: Store) -> list[tuple[str, Stage]]:
    return sorted((job.task_id, job.stage) for job in store.claim_jobs("w-1", HERE, 5, 30))


def test_the_gate_waits_while_an_older_task_of_the_repo_is_still_in_testing(store: Store) -> None:
    older, younger = add_task(store, "aaaa2222"), add_task(store, "bbbb3333")
    move_to(store, older, Stage.TESTING)
    move_to(store, younger, Stage.DEPLOY_STAGING)

    # The younger one passed testing first, but the older one merges first: the younger
    # was (or will be) tested on top of it.
    assert stages_claimed(store) == [(older, Stage.TESTING)]
    assert store.get_task(younger).gate_acquired_at is None

    move_to(store, older, Stage.DEVELOPMENT)  # it failed: it leaves the queue
    assert stages_claimed(store) == [(younger, Stage.DEPLOY_STAGING)]
    assert store.get_task(younger).gate_acquired_at is not None


def test_another_repos_testing_does_not_hold_the_gate(store: Store) -> None:
    older, younger = add_task(store, "aaaa2222", repo="api"), add_task(store, "bbbb3333")
    move_to(store, older, Stage.TESTING)
    move_to(store, younger, Stage.DEPLOY_STAGING)

    assert stages_claimed(store) == [(older, Stage.TESTING), (younger, Stage.DEPLOY_STAGING)]


def test_ahead_of_is_the_gate_holder_then_the_older_tasks_in_testing_or_waiting(
    store: Store,
) -> None:
    ids = ["aaaa2222", "bbbb3333", "cccc4444", "dddd5555", "eeee6666", "ffff7777"]
    holder, waiting, testing, asking, younger, developing = (add_task(store, t) for t in ids)
    move_to(store, developing, Stage.DEVELOPMENT)
    for task, stage in [
        (holder, Stage.DEPLOY),
        (waiting, Stage.DEPLOY_STAGING),
        (testing, Stage.TESTING),
        (asking, Stage.TESTING),
        (younger, Stage.DEPLOY_STAGING),
    ]:
        move_to(store, task, stage)
    store.claim_jobs("w-1", HERE, 1, 30)  # the oldest serial job takes the gate
    assert store.get_task(holder).gate_acquired_at is not None

    ahead = store.ahead_of(store.get_task(asking))

    assert [(a.task_id, a.branch) for a in ahead] == [
        (holder, f"orch/{holder}"),
        (waiting, f"orch/{waiting}"),
        (testing, f"orch/{testing}"),
    ]
    assert all(a.tested is None for a in ahead)  # no test report: nothing bound yet
