"""The store's promises, on SQLite and PostgreSQL alike: aware UTC times, no secret ever
written, fast bulk inserts, additive rollups, and concurrent writers that never fail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from tests.fixtures.postgres import run_in_processes
from vigil.redact import forget_secrets, register_secret
from vigil.store import (
    Backup,
    BackupDeletion,
    BackupVerification,
    Base,
    CheckResult,
    DeployMeasurement,
    DeployVerification,
    Drill,
    HourlyRollup,
    Incident,
    MonitorState,
    Notification,
    RestoreTest,
    Store,
    create_store_engine,
    open_store,
)

NOW = datetime(2026, 11, 24, 2, 30, 15, tzinfo=UTC)


def check_row(monitor: str = "api", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "monitor": monitor,
        "checked_at": NOW,
        "ok": True,
        "state": "UP",
        "status_code": 200,
        "latency_ms": 12.5,
        "tls_days_left": 40.0,
        "failed_conditions": [],
        "error": None,
        "in_maintenance": False,
        "flow_run_id": None,
    }
    return row | overrides


def count(store: Store, model: type[Base]) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- times and sessions --------------------------------------------------------------------


def test_times_come_back_aware_utc_whatever_offset_went_in(store: Store) -> None:
    berlin = NOW.astimezone(timezone(timedelta(hours=1)))
    with store.session() as session:
        session.add(Incident(monitor="api", state="DOWN", started_at=berlin, severity="high"))
    with store.session() as session:
        incident = session.scalars(select(Incident)).one()
    assert incident.started_at == NOW
    assert incident.started_at.utcoffset() == timedelta(0)
    assert incident.ended_at is None


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"), store.session() as session:
        session.add(
            Incident(monitor="api", state="DOWN", started_at=datetime(2026, 1, 1), severity="high")
        )
    with pytest.raises(ValueError, match="naive datetime"):
        store.add_rollups([{"monitor": "api", "hour": datetime(2026, 1, 1), "count": 1}])


def test_time_filters_compare_in_utc(store: Store) -> None:
    store.add_check_results([check_row(checked_at=NOW + timedelta(minutes=m)) for m in range(4)])
    later = (NOW + timedelta(minutes=2)).astimezone(timezone(timedelta(hours=-5)))
    with store.session() as session:
        found = session.scalars(select(CheckResult).where(CheckResult.checked_at >= later)).all()
    assert len(found) == 2


def test_session_commits_on_success_and_rolls_back_on_error(store: Store) -> None:
    with store.session() as session:
        session.add(MonitorState(monitor="kept"))
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(MonitorState(monitor="dropped"))
        session.flush()
        raise RuntimeError("boom")
    assert set(store.get_monitor_states()) == {"kept"}


# --- helpers ---------------------------------------------------------------------------------


def test_record_notification(store: Store) -> None:
    first = store.record_notification(
        channel="ops", channel_type="slack", severity="high", title="api is DOWN", status="sent"
    )
    second = store.record_notification(
        channel="mail",
        channel_type="email",
        severity="high",
        title="api is DOWN",
        subject="[vigil] api DOWN",
        status="failed",
        attempts=3,
        error="timeout",
        sent_at=NOW,
    )
    assert second > first
    with store.session() as session:
        row = session.get(Notification, second)
    assert row is not None
    assert (row.status, row.attempts, row.error, row.sent_at) == ("failed", 3, "timeout", NOW)


def test_monitor_states_upsert(store: Store) -> None:
    store.save_monitor_states(
        [
            MonitorState(monitor="api", state="UP", since=NOW),
            MonitorState(
                monitor="db",
                state="DOWN",
                since=NOW,
                consecutive_failures=2,
                failed_conditions=["[STATUS] == 200"],
            ),
        ]
    )
    states = store.get_monitor_states()
    states["api"].state = "DEGRADED"
    states["api"].last_error = "slow"
    states["web"] = MonitorState(monitor="web")
    store.save_monitor_states(states)  # a dict is fine too

    again = store.get_monitor_states()
    assert {name: s.state for name, s in again.items()} == {
        "api": "DEGRADED",
        "db": "DOWN",
        "web": "UNKNOWN",
    }
    assert again["api"].last_error == "slow"
    assert again["db"].failed_conditions == ["[STATUS] == 200"]
    assert again["db"].since == NOW
    store.save_monitor_states([])


def test_big_writes_go_in_batches_in_key_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vigil.store as store_module

    monkeypatch.setattr(store_module, "BATCH_ROWS", 3)
    names = [f"m{i:02d}" for i in range(10)]
    store.save_monitor_states([MonitorState(monitor=n, state="UP") for n in reversed(names)])
    rows = store.monitor_state_rows()
    assert sorted(rows) == names and {r.state for r in rows.values()} == {"UP"}
    assert rows["m03"].failed_conditions == [] and rows["m03"].since is None
    store.add_check_results([check_row(n) for n in names])
    assert count(store, CheckResult) == 10
    store.add_rollups([{"monitor": n, "hour": NOW, "count": 1} for n in names * 2])
    with store.session() as session:
        totals = dict(session.execute(select(HourlyRollup.monitor, HourlyRollup.count)).all())
    assert totals == dict.fromkeys(names, 2)


def test_add_check_results_bulk_10k(store: Store) -> None:
    """One bulk insert of a 10,000-monitor sweep (its speed is benchmarks/sweep.py's)."""
    rows = [check_row(f"m{i % 500}", checked_at=NOW + timedelta(seconds=i)) for i in range(10_000)]
    store.add_check_results(rows)
    assert count(store, CheckResult) == 10_000


def test_add_check_results_applies_defaults_and_rejects_ragged_rows(store: Store) -> None:
    store.add_check_results([{"monitor": "api", "checked_at": NOW, "ok": False, "state": "DOWN"}])
    with store.session() as session:
        row = session.scalars(select(CheckResult)).one()
    assert (row.failed_conditions, row.in_maintenance, row.error) == ([], False, None)

    without_error = {k: v for k, v in check_row().items() if k != "error"}
    with pytest.raises(ValueError, match="same keys"):
        store.add_check_results([without_error, check_row(error="lost if allowed")])
    with pytest.raises(ValueError, match="unknown check_results columns"):
        store.add_check_results([check_row(latency=3)])
    store.add_check_results([])
    assert count(store, CheckResult) == 1


def test_rollups_add_up_per_utc_hour(store: Store) -> None:
    def rollup(hour: datetime, **sums: float) -> dict[str, Any]:
        return {"monitor": "api", "hour": hour, **sums}

    store.add_rollups(
        [
            rollup(NOW, count=1, successes=1, total_latency_ms=10.0),
            rollup(NOW.replace(minute=59), count=1, degraded=1, total_latency_ms=20.0),
            rollup(NOW + timedelta(hours=1), count=1, successes=1),
        ]
    )
    store.add_rollups(
        [rollup(NOW.astimezone(timezone(timedelta(hours=3))), count=2, maintenance=2)]
    )
    store.add_rollups([])

    with store.session() as session:
        rows = session.scalars(select(HourlyRollup).order_by(HourlyRollup.hour)).all()
    summary = [
        (r.hour, r.count, r.successes, r.degraded, r.maintenance, r.total_latency_ms) for r in rows
    ]
    hour = NOW.replace(minute=0, second=0)
    assert summary == [
        (hour, 4, 1, 1, 2, 30.0),
        (hour + timedelta(hours=1), 1, 1, 0, 0, 0.0),
    ]
    with pytest.raises(ValueError, match="unknown hourly_rollups columns"):
        store.add_rollups([rollup(NOW, success=1)])
    # Every row is checked, not only the first, and each time converted, not only the first.
    with pytest.raises(ValueError, match=r"unknown hourly_rollups columns: \['success'\]"):
        store.add_rollups([rollup(NOW, count=1), rollup(NOW, success=1)])
    with pytest.raises(ValueError, match="naive datetime"):
        store.add_rollups([rollup(NOW, count=1), rollup(datetime(2026, 1, 1), count=1)])
    with store.session() as session:
        assert session.scalar(select(func.sum(HourlyRollup.count))) == 5, "nothing half-written"


def test_deploy_measurements_belong_to_their_verification(store: Store) -> None:
    with store.session() as session:
        verification = DeployVerification(target="web", release="v2", started_at=NOW)
        verification.measurements.append(
            DeployMeasurement(measured_at=NOW, verdict="Successful", checks=[{"name": "health"}])
        )
        session.add(verification)
        session.flush()
        session.add(
            DeployMeasurement(
                verification_id=verification.id,
                measured_at=NOW + timedelta(seconds=10),
                verdict="Failed",
            )
        )
    with store.session() as session:
        loaded = session.scalars(select(DeployVerification)).one()
        assert [m.verdict for m in loaded.measurements] == ["Successful", "Failed"]
        session.delete(loaded)
    assert count(store, DeployMeasurement) == 0


# --- secrets ----------------------------------------------------------------------------------

SECRET = "s3cr3t-T0KEN-value"
LEAKY = f"failed: postgresql://vigil:{SECRET}@db/prod token={SECRET}"


@pytest.fixture
def planted_secret() -> Iterator[str]:
    register_secret(SECRET)
    yield SECRET
    forget_secrets()


def every_record() -> list[Base]:
    """One row of every model, with the secret in every free-text and JSON column."""
    leaky_json = {"detail": LEAKY, "nested": [LEAKY]}
    verification = DeployVerification(
        target="web", release=LEAKY, started_at=NOW, previous_release=LEAKY, detail=LEAKY
    )
    verification.measurements.append(
        DeployMeasurement(measured_at=NOW, verdict="Error", checks=[leaky_json])
    )
    return [
        Incident(monitor="api", state="DOWN", started_at=NOW, severity="high", cause=LEAKY),
        Backup(
            id="main-20261124T020000Z",
            database="main",
            created_at=NOW,
            location=LEAKY,
            manifest_location=LEAKY,
            error=LEAKY,
            manifest=leaky_json,
        ),
        BackupVerification(
            verified_at=NOW, status="failed", error_details=LEAKY, verification_details=leaky_json
        ),
        BackupDeletion(
            backup_id="b", database="main", deleted_at=NOW, reason=LEAKY, location=LEAKY
        ),
        RestoreTest(
            database="main", started_at=NOW, status="failed", checks=[leaky_json], error=LEAKY
        ),
        Drill(started_at=NOW, status="failed", findings=[leaky_json], report=LEAKY),
        verification,
    ]


def dump(store: Store) -> str:
    with store.engine.connect() as connection:
        return "\n".join(
            repr(connection.execute(text(f"SELECT * FROM {table}")).all())
            for table in Base.metadata.tables
        )


def test_no_secret_reaches_the_database(store: Store, planted_secret: str) -> None:
    with store.session() as session:
        session.add_all(every_record())
    store.record_notification(
        channel="ops",
        channel_type="webhook",
        severity="high",
        title=LEAKY,
        subject=LEAKY,
        status="failed",
        error=LEAKY,
    )
    store.save_monitor_states(
        [MonitorState(monitor="api", last_error=LEAKY, failed_conditions=[LEAKY])]
    )
    store.add_check_results([check_row(error=LEAKY, failed_conditions=[LEAKY])])
    with store.session() as session:  # updates go through the same types
        session.scalars(select(Incident)).one().cause = f"still {LEAKY}"

    stored = dump(store)
    assert stored.count("***") > 20
    assert planted_secret not in stored


# --- engines and concurrency -----------------------------------------------------------------


def test_sqlite_connections_wait_for_locks_and_use_wal(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'vigil.db'}") as store:
        with store.engine.connect() as connection:
            pragmas = [
                connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            ]
        assert pragmas == ["wal", 30_000, 1, 1]
    assert (tmp_path / "nested" / "dir" / "vigil.db").is_file()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg3_with_pre_ping(scheme: str) -> None:
    engine = create_store_engine(f"{scheme}://u:p@db.example:5432/vigil")
    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.pool._pre_ping


def write_concurrently(barrier: Barrier, url: str, rounds: int) -> None:
    """Child process: many small transactions of every helper kind, all at once."""
    with open_store(url) as store:
        barrier.wait()
        for i in range(rounds):
            store.add_check_results([check_row(f"m{i % 3}") for _ in range(5)])
            store.add_rollups([{"monitor": "shared", "hour": NOW, "count": 1, "successes": 1}])
            store.save_monitor_states([MonitorState(monitor="shared", consecutive_failures=i)])
            store.record_notification(
                channel="ops",
                channel_type="slack",
                severity="low",
                title=f"round {i}",
                status="sent",
            )
            with store.session() as session:  # read, then write: how duties use sessions
                state = session.get(MonitorState, "shared")
                session.add(
                    Incident(
                        monitor="shared",
                        state="DOWN",
                        started_at=NOW,
                        severity="low",
                        cause=state.state if state else None,
                    )
                )


def test_concurrent_processes_write_without_errors(store: Store, store_url: str) -> None:
    processes, rounds = 4, 40
    run_in_processes(write_concurrently, store_url, rounds, count=processes)

    assert count(store, CheckResult) == processes * rounds * 5
    assert count(store, Notification) == processes * rounds
    assert count(store, Incident) == processes * rounds
    with store.session() as session:
        rollup = session.scalars(select(HourlyRollup)).one()
    assert (rollup.count, rollup.successes) == (processes * rounds, processes * rounds)
    assert store.get_monitor_states()["shared"].consecutive_failures == rounds - 1
