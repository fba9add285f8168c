"""What vigil's deploy records decide, on SQLite and PostgreSQL: the releases known to be
good, the "never roll back twice in a row" rule, and the releases deploy-gate refuses."""

from __future__ import annotations

from pathlib import Path

from vigil.deploy.history import (
    VerificationKind,
    finish_record,
    history,
    known_good,
    rollback_refusal,
    rolled_back,
    start_record,
    taken_away,
)
from vigil.store import Store


def verified(
    store: Store,
    release: str,
    verdict: str,
    *,
    kind: VerificationKind = "deploy",
    previous: str | None = None,
    target: str = "web",
) -> int:
    record_id = start_record(
        store,
        target=target,
        release=release,
        kind=kind,
        previous_release=previous,
        flow_run_id=None,
    )
    finish_record(store, record_id, verdict, f"{release} {verdict}")
    return record_id


def bad_release_rolled_back(store: Store) -> None:
    verified(store, "r1", "passed")
    verified(store, "r2", "passed")
    verified(store, "r3", "rolled_back", previous="r2")
    verified(store, "r2", "passed", kind="rollback", previous="r3")


def test_known_good_releases_are_newest_first_without_rolled_back_ones(store: Store) -> None:
    bad_release_rolled_back(store)
    verified(store, "r4", "dry_run")
    records = history(store, "web")
    assert known_good(records) == ["r2", "r1"]
    assert known_good(records, exclude=["r2"]) == ["r1"]


def test_a_release_rolled_back_by_hand_is_no_longer_good(store: Store) -> None:
    verified(store, "r1", "passed")
    verified(store, "r2", "passed")
    verified(store, "r1", "passed", kind="rollback", previous="r2")
    assert known_good(history(store, "web")) == ["r1"]
    refused = rolled_back(store, "web", "r2")
    assert refused is not None and refused.kind == "rollback"


def test_the_newest_verification_of_a_release_decides(store: Store) -> None:
    verified(store, "r1", "passed")
    verified(store, "r1", "failed")
    assert known_good(history(store, "web")) == []


def test_a_release_restored_by_rollback_is_not_rolled_back_again(store: Store) -> None:
    bad_release_rolled_back(store)
    refusal = rollback_refusal(history(store, "web"), "r2")
    assert refusal is not None and "never rolls back twice in a row" in refusal
    # A new release since: its failure may be rolled back again.
    verified(store, "r5", "running")
    assert rollback_refusal(history(store, "web"), "r5") is None


def test_deploy_gate_refuses_rolled_back_releases_only(store: Store) -> None:
    bad_release_rolled_back(store)
    verified(store, "r1", "rollback_failed", target="api")
    record = rolled_back(store, "web", "r3")
    assert record is not None and (record.kind, record.previous_release) == ("rollback", "r3")
    assert rolled_back(store, "web", "r2") is None
    assert rolled_back(store, "web", "r1") is None
    assert rolled_back(store, "web", "unknown") is None
    assert rolled_back(store, "api", "r1") is not None
    # Shipped anyway and passed: the newest word on the release is that it is fine.
    verified(store, "r3", "passed")
    assert rolled_back(store, "web", "r3") is None


def test_degraded_passes_are_never_preferred_and_unfinished_rows_change_nothing(
    store: Store,
) -> None:
    verified(store, "r1", "passed")
    verified(store, "r2", "degraded")
    assert known_good(history(store, "web")) == ["r1", "r2"]
    # Interrupted mid-rollback: r3 is refused, r1 (the target) keeps its standing.
    verified(store, "r3", "rollback_interrupted", previous="r1")
    verified(store, "r1", "interrupted", kind="rollback", previous="r3")
    records = history(store, "web")
    assert known_good(records) == ["r1", "r2"]
    assert rolled_back(store, "web", "r3") is not None
    assert taken_away(records) == {"r3"}
    # An interrupted manual rollback away from r1 does not take r1 away either.
    verified(store, "r2", "interrupted", kind="rollback", previous="r1")
    assert known_good(history(store, "web")) == ["r1", "r2"]
    assert rolled_back(store, "web", "r1") is None


def test_the_name_order_fallback_never_picks_a_rolled_back_release(tmp_path: Path) -> None:
    from tasks.rollback import plan_rollback
    from vigil.config import SymlinkRollback
    from vigil.deploy.rollback import RollbackRequest

    for name in ("r1", "r2", "r3"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "r3")
    config = SymlinkRollback(
        type="symlink", releases_dir=str(tmp_path / "releases"), current=str(tmp_path / "current")
    )
    plan = plan_rollback(config, RollbackRequest("web", "r3", refused=("r2",)))
    assert plan.to_release == "r1"
    none = plan_rollback(config, RollbackRequest("web", "r3", refused=("r1", "r2")))
    assert none.problem is not None and "(r1, r2 rolled back before)" in none.problem
