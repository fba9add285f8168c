"""What vigil's deploy records decide, on SQLite and PostgreSQL: the releases known to be
good, the "never roll back twice in a row" rule, and the releases deploy-gate refuses."""

from __future__ import annotations

from vigil.deploy.history import (
    VerificationKind,
    finish_record,
    history,
    known_good,
    rollback_refusal,
    rolled_back,
    start_record,
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
