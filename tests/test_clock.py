"""vigil's one clock (vigil/clock.py): VIGIL_CLOCK moves every "now" vigil dates records and
judges age by, and nothing else. Real runs: sweeps at vigil times spread over 100 days (an
outage on day 40), then the housekeeping duty and `vigil records prune` on the same clock:
the raw checks past 30 days go, the first check, the rollups and the closed incident stay,
and the yearly SLO report and the 90-day bars read the same as before the prune."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flows.housekeeping import daily_housekeeping
from flows.sweep import uptime_sweep
from tests.helpers import run, write_config
from vigil import clock, statuspage
from vigil.config import load_config
from vigil.report import build_report
from vigil.store import CheckResult, HourlyRollup, Incident, open_store

ROOT = Path(__file__).resolve().parents[1]
# In the future, so that the real clock finds nothing old: only VIGIL_CLOCK can.
T0 = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_the_clock_reads_as_its_value_says() -> None:
    c = clock.parse("2026-12-07T16:00:00Zx1440")
    assert c.read(datetime(2026, 12, 7, 16, 1, tzinfo=UTC)) == datetime(
        2026, 12, 8, 16, 0, tzinfo=UTC
    )
    offset = clock.parse("2025-01-01T00:00:00Zx1@2026-12-07T16:00:00Z")
    assert offset.read(datetime(2026, 12, 7, 17, 0, tzinfo=UTC)) == datetime(
        2025, 1, 1, 1, 0, tzinfo=UTC
    )
    frozen = clock.parse(clock.frozen(T0))
    assert frozen.read(datetime(2040, 1, 1, tzinfo=UTC)) == T0
    for bad in ("2026-12-07", "nonsensex2", "2026-12-07T16:00Zx-1", "2026-12-07T16:00Zxfast"):
        with pytest.raises(clock.ClockError):
            clock.parse(bad)


def test_unset_is_real_time_and_set_is_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.ENV, raising=False)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)
    monkeypatch.setenv(clock.ENV, clock.frozen(T0))
    assert clock.now() == T0
    monkeypatch.setenv(clock.ENV, clock.accelerated(86400, at=T0))
    assert clock.now() >= T0


# Modules whose datetime.now is about the wall, not the records' calendar: Prefect's run
# names (its schedule is real), certificate expiry and Retry-After (the world's clock), and
# the drill's and restore test's timings (objectives against the wall).
WALL_CLOCK = {
    "vigil/clock.py",
    "vigil/duties.py",
    "vigil/drill.py",
    "flows/drill.py",
    "flows/restore_test.py",
    "tasks/probes/enrichment.py",
    "tasks/notify/transports.py",
    "tasks/recovery/inspect.py",
}


def test_one_clock_dates_the_records() -> None:
    """No module outside the wall-clock list reads datetime.now/utcnow/time.time itself."""
    found = []
    for package in ("vigil", "flows", "tasks", "deployments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name in WALL_CLOCK:
                continue
            tree = ast.parse(path.read_text())
            found += [f"{name}:{n.lineno}" for n in ast.walk(tree) if reads_the_wall(n)]
    assert found == [], f"read vigil.clock.now() instead: {found}"


def reads_the_wall(node: ast.AST) -> bool:
    """`datetime.now`, `datetime.utcnow`, `date.today` or `time.time`."""
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return False
    owner, attr = node.value.id, node.attr
    return (owner in ("datetime", "date") and attr in ("now", "utcnow", "today")) or (
        owner == "time" and attr == "time"
    )


def counts(url: str) -> dict[str, int]:
    with open_store(url) as store, store.session() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (CheckResult, HourlyRollup, Incident)
        }


def figures(path: Path, now: datetime) -> dict[str, Any]:
    config = load_config(str(path))
    with open_store(config.store.url) as store:
        year = build_report(config, store, now, days=365)
        page = statuspage.build(config, store, now)
    [api] = year.monitors
    [service] = page.services()
    return {
        "measured_minutes": api.measured_minutes,
        "uptime_pct": api.uptime_pct,
        "downtime_minutes": api.downtime_minutes,
        "incidents": api.incidents,
        "bars": [(d.day, d.measured_s, d.down_s) for d in service.days],
        "page_uptime": service.uptime_pct,
    }


@pytest.mark.usefixtures("prefect_api")
def test_retention_on_the_clock_deletes_what_is_old_and_keeps_what_reports_need(
    tmp_path: Path, http_target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_target.set("/health", status=200)
    path = write_config(
        tmp_path,
        f"""
        slo: 99.9
        retention: {{checks: 30d}}
        monitors:
          - {{name: api, url: '{url}', public: true, failure_threshold: 1}}
        """,
    )
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    plan = [(0, 200), (20, 200), (40, 503), (40.1, 200), (60, 200), (80, 200), (95, 200)]
    for day, status in plan:
        http_target.set("/health", status=status)
        monkeypatch.setenv(clock.ENV, clock.frozen(T0 + day * DAY))
        state, _ = run(uptime_sweep, config_path=str(path))
        assert state.is_final()
    with open_store(store_url) as store, store.session() as session:
        stamps = sorted(r.checked_at for r in session.scalars(select(CheckResult)))
    assert stamps[0].replace(tzinfo=UTC) == T0, "the sweep dates its checks by vigil's clock"
    now = T0 + 100 * DAY
    before = counts(store_url)
    assert before["check_results"] >= len(plan) and before["incidents"] == 1

    # The real clock (2026) finds nothing past retention in 2031's records.
    monkeypatch.delenv(clock.ENV)
    env = {k: v for k, v in os.environ.items() if k != clock.ENV}
    real = vigil_prune(path, env, dry_run=True)
    assert real["eligible"] == 0, real

    # A subprocess on an accelerated clock (a day a second from day 100) sees what is old.
    env[clock.ENV] = clock.accelerated(86400, at=now)
    dry = vigil_prune(path, env, dry_run=True)
    assert {t["table"]: t["eligible"] for t in dry["tables"]}["check_results"] >= 3, dry
    assert counts(store_url) == before, "--dry-run deletes nothing"

    figures_before = figures(path, now)
    monkeypatch.setenv(clock.ENV, clock.frozen(now))
    state = daily_housekeeping(config_path=str(path), return_state=True)
    assert state.is_completed(), state.message
    after = counts(store_url)
    # days 20, 40 (twice, with the confirmation retry or not) and 60 are past 30 days; the
    # first check (day 0) is kept, so are days 80 and 95
    assert after["check_results"] < before["check_results"]
    with open_store(store_url) as store, store.session() as session:
        kept = sorted(
            r.checked_at.replace(tzinfo=UTC) for r in session.scalars(select(CheckResult))
        )
    assert kept[0] == T0 and all(k >= now - 30 * DAY for k in kept[1:]), kept
    assert after["hourly_rollups"] == before["hourly_rollups"], "rollups outlive the checks"
    assert after["incidents"] == 1, "the closed incident is the audit trail"
    assert figures(path, now) == figures_before, "the yearly SLO and 90-day bars are unchanged"
    assert figures_before["incidents"] == 1 and figures_before["downtime_minutes"] > 0


def vigil_prune(path: Path, env: dict[str, str], *, dry_run: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "vigil", "records", "prune", "--json", "-c", str(path)]
    done = subprocess.run(
        command + (["--dry-run"] if dry_run else []),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
