"""Prefect's database kept bounded: the settings vigil gives a server are the ones the
installed Prefect reads, a real server started with them deletes old flow runs (and their
logs) and still serves the UI and the API, and `vigil status` warns about a server that keeps
runs forever (the session's default server) with the exact setting to change."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.fixtures.prefect_server import PrefectServer, wait_for
from vigil.cli import app
from vigil.prefect_db import (
    EVENTS_RETENTION,
    VACUUM_ENABLED,
    VACUUM_RETENTION,
    assess,
    server_env,
    server_settings,
)

DAY = timedelta(days=1)


def test_the_setting_names_are_the_ones_the_installed_prefect_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import Settings

    for name, value in server_settings(timedelta(days=14)).items():
        monkeypatch.setenv(name, value)
    vacuum = Settings().server.services.db_vacuum
    assert "flow_runs" in vacuum.enabled_vacuum_types
    assert vacuum.retention_period == timedelta(days=14)
    assert Settings().server.events.retention_period == timedelta(days=7), "never longer"
    monkeypatch.setenv(EVENTS_RETENTION, server_settings(timedelta(hours=2))[EVENTS_RETENTION])
    assert Settings().server.events.retention_period == timedelta(hours=2), "runs' horizon"
    monkeypatch.setenv(VACUUM_RETENTION, "bogus")
    with pytest.raises(Exception, match="retention_period"):
        Settings()


def test_an_operators_own_setting_wins() -> None:
    env = server_env({VACUUM_ENABLED: "events", "X": "1"}, DAY)
    assert env[VACUUM_ENABLED] == "events" and env[VACUUM_RETENTION] == "86400"
    assert server_env({}, DAY)[VACUUM_ENABLED] == "events,flow_runs"


def settings(enabled: Any, retention: str = "P90D", home: str | None = None) -> dict[str, Any]:
    vacuum = {"enabled": enabled, "retention_period": retention}
    return {"home": home, "server": {"services": {"db_vacuum": vacuum}}}


def test_what_status_warns_about(tmp_path: Path) -> None:
    forever = assess(settings(["events"]), wanted=DAY * 30, warn_size=10**9, env={})
    assert forever.warnings == [
        f"the Prefect server keeps flow runs forever ({VACUUM_ENABLED} is events): set "
        f"{VACUUM_ENABLED}=events,flow_runs and {VACUUM_RETENTION}=2592000 on the server, "
        "then restart it"
    ]
    good = assess(settings(["events", "flow_runs"], "P30D"), wanted=DAY * 30, warn_size=1, env={})
    assert good.warnings == [] and good.retention == DAY * 30
    longer = assess(settings(True, "P90D"), wanted=DAY * 30, warn_size=1, env={})
    assert [w.split(":")[0] for w in longer.warnings] == [
        "the Prefect server keeps flow runs 90d, vigil's retention.prefect_runs says 30d"
    ]
    (tmp_path / "prefect.db").write_bytes(b"x" * 5000)
    big = assess(
        settings(["events", "flow_runs"], "P30D", str(tmp_path)),
        wanted=DAY * 30,
        warn_size=4000,
        env={},
    )
    assert big.size_bytes == 5000 and len(big.warnings) == 1
    assert "over retention.prefect_db_warn_size 4.0 KB: shorten" in big.warnings[0]
    assert VACUUM_RETENTION in big.warnings[0]
    on_postgres = {"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://x/y"}
    unknown = assess(
        settings(True, "P30D", str(tmp_path)), wanted=DAY * 30, warn_size=1, env=on_postgres
    )
    assert unknown.size_bytes is None and unknown.warnings == []


def status(server: PrefectServer, home: Path) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "vigil.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{home / 'vigil.db'}'}}\nretention: {{checks: 14d}}\n"
    )
    # The server's database URL tells vigil where its SQLite file is (its API hides it).
    env = server.client_env(home, PREFECT_API_DATABASE_CONNECTION_URL=server.database_url)
    result = CliRunner().invoke(app, ["status", "--json", "-c", str(config)], env=env)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)["prefect"]
    return found


def test_status_warns_about_a_server_that_keeps_runs_forever(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    found = status(prefect_server, tmp_path)
    assert found["vacuum"] == ["events"]
    [warning] = found["warnings"]
    assert f"set {VACUUM_ENABLED}=events,flow_runs and {VACUUM_RETENTION}=604800" in warning
    assert found["size_bytes"] and found["size_of"].endswith("prefect.db")


def age_events(database: Path, hours: float) -> int:
    """Make every event (and its resources) look `hours` old (the vacuum goes by occurred)."""
    occurred = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE event_resources SET occurred = ?", (occurred,))
        return connection.execute("UPDATE events SET occurred = ?", (occurred,)).rowcount


def old_events(database: Path, hours: float) -> int:
    cutoff = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as connection:
        query = "SELECT count(*) FROM events WHERE occurred < ?"
        return int(connection.execute(query, (cutoff,)).fetchone()[0])


def age_runs(database: Path, hours: float) -> int:
    """Make every run look finished `hours` ago (the vacuum goes by end_time)."""
    ended = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "UPDATE flow_run SET end_time = ?, state_type = 'COMPLETED'", (ended,)
        ).rowcount


@pytest.mark.slow
def test_a_vacuumed_prefect_database_still_serves_the_ui_and_the_api(tmp_path: Path) -> None:
    from prefect import flow
    from prefect.client.schemas.actions import LogCreate
    from prefect.states import Completed

    @flow(name="vacuum-probe")
    def probe() -> None:
        pass

    settings = server_settings(timedelta(hours=2)) | {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS": "2"
    }
    with PrefectServer(tmp_path / "server", **settings) as server:
        with server.client() as client:
            runs = [client.create_flow_run(probe, state=Completed()) for _ in range(6)]
            client.create_logs(
                [
                    LogCreate(
                        name="t",
                        level=20,
                        message="m",
                        timestamp=datetime.now(UTC),
                        flow_run_id=r.id,
                    )
                    for r in runs
                ]
            )
        database = tmp_path / "server" / "prefect.db"
        assert age_runs(database, hours=3) == 6
        wait_for(lambda: age_events(database, hours=3) > 0, 30, "the runs' events", server.log)

        def runs_left() -> int:
            with server.client() as client:
                return len(client.read_flow_runs())

        wait_for(lambda: runs_left() == 0, 60, "the vacuum to delete the old runs", server.log)
        # Events go by the runs' horizon too, not Prefect's 7 days.
        wait_for(lambda: old_events(database, 2) == 0, 60, "the old events to go", server.log)
        with sqlite3.connect(database) as connection:
            assert connection.execute("SELECT count(*) FROM log").fetchone()[0] == 0
        time.sleep(1)
        assert httpx.get(f"{server.url}/", timeout=10).status_code == 200  # the UI
        assert httpx.get(f"{server.api_url}/health", timeout=10).status_code == 200
        with server.client() as client:  # and it still takes new runs
            client.create_flow_run(probe, state=Completed())
            assert len(client.read_flow_runs()) == 1
        found = status(server, tmp_path / "home")
        assert found["vacuum"] == ["events", "flow_runs"]
        assert found["warnings"] == [], found["warnings"]
        assert found["retention_s"] == 7200
