"""`vigil status`: every monitor worst first, the last backup, restore test, drill and deploy
verification with their flow-run links; exit 1 when anything needs attention; and an answer
well under a second with 1,000 monitors and 30 days of history."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.history import END, STANDARD, Seeded, recent, run_id, seeded_store
from vigil.cli import app
from vigil.monitoring import MonitorState
from vigil.status import gather, render, ui_base_url
from vigil.store import Backup, Store, open_store

UI = "http://127.0.0.1:4200"


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_store(STANDARD, "sqlite", tmp_path_factory.mktemp("status"), None) as s:
        yield s


def test_monitors_come_worst_first_with_their_flow_run(standard: Seeded) -> None:
    screen = gather(STANDARD.config(), standard.store, END, UI)
    web, *rest = screen.monitors
    assert (web.name, web.state, web.since) == ("web", "DOWN", END - timedelta(minutes=20))
    assert web.problem == "[STATUS] 503, expected == 200"
    last_sweep = int((END - STANDARD.start) / timedelta(minutes=10))
    assert web.link == f"{UI}/runs/flow-run/{run_id(last_sweep)}"
    # The UP ones, longest-standing first: db since it joined, api and search since their
    # last problem ended.
    assert [m.name for m in rest] == ["db", "api", "search"]
    assert all(m.state == "UP" and m.attention is None for m in rest)


def test_what_needs_attention(standard: Seeded) -> None:
    screen = gather(STANDARD.config(), standard.store, END, UI)
    assert screen.attention() == [
        "monitor web: DOWN since 2026-03-01 11:40 UTC",
        "backup billing: the newest good backup is 3d10h old (max_age 1d2h)",
        "DR drill: the last drill missed its RPO",
        "deploy web: the last deploy of v5 rollback_failed",
    ]
    main = screen.backups[0]
    assert (main.size_bytes, main.verified, main.last_status) == (1_390_000_000, True, "succeeded")
    assert main.link == f"{UI}/runs/flow-run/b0000000-0000-4000-8000-000000000039"
    restore = screen.restore_tests[0]
    assert (restore.duration_s, restore.rto_s, restore.rto_met) == (650, 1800, True)


def test_the_screen_shows_problems_in_full_and_healthy_monitors_as_a_count(
    standard: Seeded,
) -> None:
    lines = render(gather(STANDARD.config(), standard.store, END, UI))
    assert lines[0] == "vigil status at 2026-03-01 12:00 UTC: 4 need attention"
    assert lines[2] == "Monitors (4: 1 down, 3 up)"
    assert lines[3].startswith(" ! DOWN     web  since 2026-03-01 11:40 UTC (20m)")
    assert lines[4] == "  3 UP"
    assert " ! 2026-02-14 03:00 UTC missed: RTO 40m met, RPO 1d1h MISSED" in "\n".join(lines)


def test_the_command_exits_1_and_speaks_json(tmp_path: Path) -> None:
    scenario = recent(history_days=2)
    with seeded_store(scenario, "sqlite", tmp_path, None) as seeded:
        config = scenario.write_config(tmp_path, seeded.url)
        result = CliRunner().invoke(app, ["status", "-c", str(config), "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["needs_attention"] is True
    assert document["monitors"][0]["name"] == "web"
    assert "monitor web: DOWN since" in document["attention"][0]


def test_a_healthy_system_exits_0(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    config = write_config(tmp_path, monitors=["api"], databases=["main"])
    with open_store(store_url(tmp_path)) as store:
        save_states(store, {"api": ("UP", now - timedelta(days=3), now - timedelta(seconds=30))})
        add_backup(store, "main", now - timedelta(hours=3), "succeeded", verified=True)
    result = CliRunner().invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("vigil status at ") and ": all well" in result.output


def test_stale_or_unchecked_monitors_and_bad_backups_need_attention(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    config = write_config(tmp_path, monitors=["api", "new"], databases=["main", "fresh"])
    with open_store(store_url(tmp_path)) as store:
        save_states(store, {"api": ("UP", now - timedelta(days=3), now - timedelta(minutes=20))})
        add_backup(store, "main", now - timedelta(hours=30), "succeeded", verified=True)
        add_backup(store, "main", now - timedelta(hours=6), "failed", verified=False)
    result = CliRunner().invoke(app, ["status", "-c", str(config), "--json"])
    assert result.exit_code == 1
    attention = json.loads(result.stdout)["attention"]
    assert attention[0] == "monitor new: never checked (is the uptime sweep running?)"
    assert attention[1].startswith("monitor api: not checked since ")
    assert attention[2].startswith("backup main: the last backup (") and "failed" in attention[2]
    assert attention[3] == "backup fresh: no successful backup on record"


def test_ui_links_follow_prefect_settings(tmp_path: Path) -> None:
    assert ui_base_url({"PREFECT_UI_URL": "https://ui.example/"}) == "https://ui.example"
    assert ui_base_url({"PREFECT_API_URL": "http://10.0.0.5:4200/api"}) == "http://10.0.0.5:4200"
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.lan:4200/api"\n'
    )
    assert ui_base_url({"PREFECT_HOME": str(tmp_path)}) == "http://prefect.lan:4200"
    assert ui_base_url({"PREFECT_HOME": str(tmp_path / "none")}) == UI


# --- 1,000 monitors and 30 days -------------------------------------------------------------

FLEET = 1000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Store]]:
    """1,000 monitors with 30 days of hourly rollups (720,000 rows, generated in SQL),
    their states, their last hour of check rows, and 30 days of backups for 3 databases."""
    from tests.history import _database

    server = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("fleet")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with _database(request.param, folder, server) as url, open_store(url) as store:
        started = time.perf_counter()
        _seed_fleet(store, now)
        print(f"\nseeded {FLEET} monitors x 30 days in {time.perf_counter() - started:.1f}s")
        yield write_config(folder, [f"m{i:04d}" for i in range(FLEET)], ["a", "b", "c"], url), store


def test_status_answers_fast_with_1000_monitors(fleet: tuple[Path, Store]) -> None:
    config_path, store = fleet
    from vigil.config import load_config

    config = load_config(config_path)
    started = time.perf_counter()
    screen = gather(config, store, datetime.now(UTC), UI)
    took = time.perf_counter() - started
    print(f"\nvigil status over {FLEET} monitors read in {took * 1000:.0f} ms")
    assert took < 3.0
    assert len(screen.monitors) == FLEET
    states = [m.state for m in screen.monitors]
    assert states[:15] == ["DOWN"] * 5 + ["DEGRADED"] * 10
    assert all(m.link and m.link.startswith(f"{UI}/runs/flow-run/") for m in screen.monitors)
    assert len(screen.attention()) == 15


def test_the_status_command_end_to_end_with_1000_monitors(fleet: tuple[Path, Store]) -> None:
    config_path, _ = fleet
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "status", "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.perf_counter() - started
    print(f"\n`vigil status` with {FLEET} monitors: {took:.2f}s, Python start-up included")
    assert result.returncode == 1, result.stderr
    assert "Monitors (1000: 5 down, 10 degraded, 985 up)" in result.stdout
    assert took < 5.0


def _seed_fleet(store: Store, now: datetime) -> None:
    names = [f"m{i:04d}" for i in range(FLEET)]
    _rollups(store, now - timedelta(days=30))
    save_states(
        store,
        {
            name: (_fleet_state(i), now - timedelta(hours=i % 48 + 1), now)
            for i, name in enumerate(names)
        },
    )
    rows = [
        {
            "monitor": name,
            "checked_at": now - timedelta(minutes=10 * k),
            "ok": _fleet_state(i) == "UP",
            "state": _fleet_state(i),
            "latency_ms": 120.0,
            "flow_run_id": run_id(k),
        }
        for i, name in enumerate(names)
        for k in range(6)
    ]
    store.add_check_results(rows)
    with store.session() as session:
        session.add_all(
            backup(database, now - timedelta(days=day, hours=2), "succeeded", True)
            for database in ("a", "b", "c")
            for day in range(30)
        )


def _fleet_state(i: int) -> str:
    """5 DOWN (every 200th) and 10 DEGRADED (every 100th, offset by 50)."""
    if i % 200 == 0:
        return "DOWN"
    return "DEGRADED" if i % 100 == 50 else "UP"


def _rollups(store: Store, first_hour: datetime) -> None:
    """720,000 rollup rows in one INSERT ... SELECT: a Python executemany would take longer
    than the whole test is allowed."""
    first = first_hour.replace(minute=0)
    with store.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999),"
                    " h(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM h WHERE k < 719) "
                    "INSERT INTO hourly_rollups (monitor, hour, count, successes, degraded,"
                    " maintenance, total_latency_ms) "
                    "SELECT printf('m%04d', i), strftime('%Y-%m-%d %H:%M:%S.000000', :first,"
                    " '+' || k || ' hours'), 60, 60, 0, 0, 7200.0 FROM n, h"
                ),
                {"first": first.strftime("%Y-%m-%d %H:%M:%S")},
            )
        else:
            connection.execute(
                text(
                    "INSERT INTO hourly_rollups (monitor, hour, count, successes, degraded,"
                    " maintenance, total_latency_ms) "
                    "SELECT 'm' || lpad(i::text, 4, '0'), h, 60, 60, 0, 0, 7200.0 "
                    "FROM generate_series(0, 999) AS i, generate_series(CAST(:first AS"
                    " timestamptz), CAST(:first AS timestamptz) + interval '719 hours',"
                    " interval '1 hour') AS h"
                ),
                {"first": first},
            )


# --- small helpers --------------------------------------------------------------------------


def store_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'vigil.db'}"


def write_config(
    folder: Path, monitors: list[str], databases: list[str], url: str | None = None
) -> Path:
    lines = [f"store: {{url: '{url or store_url(folder)}'}}", "monitors:"]
    lines += [f"  - {{name: {m}, url: 'http://127.0.0.1:9/{m}'}}" for m in monitors]
    lines += ["databases:"]
    lines += [f"  - {{name: {d}, url: 'postgresql://127.0.0.1:9/{d}'}}" for d in databases]
    path = folder / "vigil.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def save_states(store: Store, states: dict[str, tuple[str, datetime, datetime]]) -> None:
    """{monitor: (state, since, last checked)}; each gets a check row at its last check."""
    store.save_monitor_states(
        [
            MonitorState(name, state, since, last_checked_at=checked)
            for name, (state, since, checked) in states.items()
        ]
    )


def add_backup(store: Store, database: str, at: datetime, status: str, verified: bool) -> None:
    with store.session() as session:
        session.add(backup(database, at, status, verified))


def backup(database: str, at: datetime, status: str, verified: bool) -> Backup:
    return Backup(
        id=f"{database}-{at:%Y%m%d%H%M%S}",
        database=database,
        created_at=at,
        completed_at=at + timedelta(minutes=1),
        status=status,
        verified=verified,
        size_bytes=5_000_000,
    )


@pytest.mark.parametrize(
    ("status", "rto_met", "rpo_met", "attention"),
    [
        ("passed", True, True, None),
        ("findings", True, True, "the last drill (2026-03-01 03:00 UTC) has findings to act on"),
        ("missed", False, True, "the last drill missed its RTO"),
        ("failed", False, False, "the last drill (2026-03-01 03:00 UTC) failed: the recovery"),
    ],
)
def test_each_drill_verdict_reads_as_what_to_do(
    status: str, rto_met: bool, rpo_met: bool, attention: str | None
) -> None:
    from datetime import UTC, datetime

    from vigil.status import drill_attention
    from vigil.store import Drill

    drill = Drill(
        started_at=datetime(2026, 3, 1, 3, tzinfo=UTC),
        status=status,
        rto_met=rto_met,
        rpo_met=rpo_met,
    )
    said = drill_attention(drill)
    assert said == attention if attention is None else (said or "").startswith(attention)
