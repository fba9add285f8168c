"""What each location saw, everywhere people read it: `vigil status` (text and --json), the
public status page, the Prometheus metrics, the report and the sweep's table. A monitor DOWN
by its quorum, one UP with a regional warning, one DEGRADED by `below_quorum`, one with a
location that did not report, and a regional episode whose failing location has gone silent.

Each sweep is judged by the one decision point from real evaluations of what each location
could have seen (tests/test_sweep_quorum.py's `judge`) and recorded in a real records store;
the commands then run as processes against it. tests/test_sweep_locations.py does the same
with real workers. The third location's name is one markdown would make a link of (and
emphasise), a monitor's name carries HTML, quotes and rich markup: both stay text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.test_sweep_quorum import judge
from vigil.config import Config, parse_config
from vigil.monitoring import MonitorState
from vigil.report import build_report
from vigil.report_render import to_markdown
from vigil.store import open_store
from vigil.sweep import presentation
from vigil.sweep.decision import SweepDecision, decide
from vigil.sweep.records import record_sweep

SOUTH = "www.south_1.example"
SHOP = 'shop <b>"[bold]'
CONFIG = """
store: {url: 'STORE'}
status_page: {out: 'SITE'}
locations:
  eu-west: {pool: vigil-eu}
  us-east: {pool: vigil-us}
  SOUTH: {pool: vigil-south}
monitors:
  - {name: api, url: "http://127.0.0.1:9/a", failure_threshold: 1, public: true}
  - {name: 'SHOP', url: "http://127.0.0.1:9/s", failure_threshold: 1, public: true}
  - {name: cdn, url: "http://127.0.0.1:9/c", failure_threshold: 1, public: true,
     below_quorum: degraded}
  - {name: edge, url: "http://127.0.0.1:9/e", failure_threshold: 1, public: true}
  - {name: calm, url: "http://127.0.0.1:9/q", failure_threshold: 1, public: true}
"""
UP_HERE = {"api": 200, SHOP: 200, "cdn": 200, "edge": 200, "calm": 200}
# api fails from two of three (DOWN); SHOP and cdn from SOUTH only (UP with a warning,
# DEGRADED); SOUTH does not report on edge.
FIRST = {
    "eu-west": {**UP_HERE, "api": 503},
    "us-east": {**UP_HERE, "api": 503},
    SOUTH: {"api": 200, SHOP: 503, "cdn": 503, "calm": 200},
}
WHERE_SOUTH_FAILS = f"failing from {SOUTH} only; up from eu-west and us-east"


class Records:
    """A config file and its store, sweeps recorded into it, the commands run on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_url = f"sqlite:///{root / 'vigil.db'}"
        self.path = root / "vigil.yaml"
        text = CONFIG.replace("STORE", self.store_url).replace("SITE", str(root / "site"))
        self.path.write_text(text.replace("SOUTH", SOUTH).replace("SHOP", SHOP))
        self.config: Config = parse_config(self.path.read_text())
        self.states: dict[str, MonitorState] = {}

    def sweep(self, views: dict[str, dict[str, int | None]], at: datetime) -> SweepDecision:
        checks, _, located = judge(self.config, views)
        decision = decide(self.config, checks, self.states, at, located)
        with open_store(self.store_url) as store:
            record_sweep(store, decision, decision.after, None)
        self.states = dict(decision.after)
        return decision

    def vigil(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "vigil", "-c", str(self.path), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.root), "COLUMNS": "300"},
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def status_lines(self) -> dict[str, str]:
        """`vigil status`'s line for each monitor shown on one."""
        text = self.vigil("status").stdout
        names = [m.name for m in self.config.monitors]
        return {n: line for line in text.splitlines() for n in names if f" {n}  " in line}

    def status_json(self) -> dict[str, dict[str, Any]]:
        screen = json.loads(self.vigil("status", "--json").stdout)
        return {m["name"]: m for m in screen["monitors"]}

    def metrics(self) -> dict[str, dict[tuple[str, str], float]]:
        """The per-location gauges, by (monitor, location)."""
        found: dict[str, dict[tuple[str, str], float]] = {}
        for family in text_string_to_metric_families(self.vigil("metrics").stdout):
            for sample in family.samples:
                if "location" in sample.labels:
                    key = (sample.labels["monitor"], sample.labels["location"])
                    found.setdefault(sample.name, {})[key] = sample.value
        return found

    def status_page(self) -> tuple[dict[str, str], str]:
        done = self.vigil("status-page")
        assert done.returncode == 0, done.stdout + done.stderr
        page = json.loads((self.root / "site" / "status.json").read_text())
        regions = {s["name"]: s.get("regions", "") for s in page["services"]}
        return regions, (self.root / "site" / "index.html").read_text()


def test_every_medium_says_which_locations_saw_what(tmp_path: Path) -> None:
    records = Records(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    decision = records.sweep(FIRST, now - timedelta(minutes=1))
    assert {n: s.state for n, s in decision.after.items()} == {
        "api": "DOWN",
        SHOP: "UP",
        "cdn": "DEGRADED",
        "edge": "UP",
        "calm": "UP",
    }

    lines = records.status_lines()
    assert set(lines) == {"api", SHOP, "cdn", "edge"}, "calm: all alike, counted as UP"
    assert "DOWN" in lines["api"] and "[STATUS] 503, expected < 400" in lines["api"]
    assert lines["api"].count("DOWN from eu-west and us-east") == 1, lines["api"]
    assert f"[DOWN from eu-west and us-east, up from {SOUTH}]" in lines["api"]
    assert " UP " in lines[SHOP] and f"[{WHERE_SOUTH_FAILS}]" in lines[SHOP], lines[SHOP]
    assert "DEGRADED" in lines["cdn"] and f"[{WHERE_SOUTH_FAILS}]" in lines["cdn"]
    assert "DOWN from" not in lines["cdn"], "DEGRADED below its quorum: not said DOWN"
    assert f"{SOUTH}: [STATUS] 503, expected < 400" in lines["cdn"], "and why, from where"
    assert lines["cdn"].count(WHERE_SOUTH_FAILS) == 1, lines["cdn"]
    assert f"[up from eu-west and us-east, no report from {SOUTH}]" in lines["edge"]

    screen = records.status_json()
    assert screen["api"]["seen"] == {"eu-west": "down", "us-east": "down", SOUTH: "up"}
    assert screen[SHOP]["locations"] == WHERE_SOUTH_FAILS
    assert screen["cdn"]["seen"] == {"eu-west": "up", "us-east": "up", SOUTH: "down"}
    assert screen["edge"]["seen"] == {"eu-west": "up", "us-east": "up", SOUTH: "no report"}
    assert screen["calm"]["locations"] is None

    gauges = records.metrics()
    failing, reported = (
        gauges["vigil_monitor_location_failing"],
        gauges["vigil_monitor_location_reported"],
    )
    assert failing[("api", "eu-west")] == 1 and failing[("api", SOUTH)] == 0
    assert failing[(SHOP, SOUTH)] == 1, "the monitor's name came back intact from the labels"
    assert reported[("edge", SOUTH)] == 0 and ("edge", SOUTH) not in failing
    assert reported[("calm", "us-east")] == 1

    regions, index = records.status_page()
    assert regions[SHOP] == WHERE_SOUTH_FAILS and regions["cdn"] == WHERE_SOUTH_FAILS
    assert regions["api"] == f"DOWN from eu-west and us-east, up from {SOUTH}"
    assert regions["edge"] == f"up from eu-west and us-east, no report from {SOUTH}"
    assert regions["calm"] == ""
    assert f"Seen {WHERE_SOUTH_FAILS}</p>" in index
    assert "<b>" not in index and "shop &lt;b&gt;&quot;[bold]" in index

    rows = {row["monitor"]: row for row in presentation.table(decision)[0]}
    assert rows[SHOP]["locations"] == WHERE_SOUTH_FAILS
    assert rows[SHOP]["failed conditions"] == "", "the locations' words are their own column"
    assert rows["api"]["failed conditions"] == "[STATUS] 503, expected < 400"
    assert rows["calm"]["locations"] == f"up from eu-west, us-east and {SOUTH}"
    summary = presentation.sweep_summary(decision, 0)
    assert summary["locations"][SHOP] == WHERE_SOUTH_FAILS

    with open_store(records.store_url) as store:
        report = build_report(records.config, store, now + timedelta(minutes=1), days=1)
    text = to_markdown(report)
    escaped = SOUTH.replace("www.", "www\\.").replace("_", "\\_")
    assert f"| DOWN from eu-west and us-east, up from {escaped} |" in text, text
    assert f"| failing from {escaped} only; up from eu-west and us-east |" in text, text
    assert SOUTH not in text, "a location's name makes no link or emphasis in markdown"


def test_a_regional_episode_whose_location_went_silent_is_still_shown(tmp_path: Path) -> None:
    records = Records(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    began = now - timedelta(minutes=2)
    records.sweep(FIRST, began)
    silent_south = {**FIRST, SOUTH: {"api": 200, "cdn": 200, "calm": 200}}
    decision = records.sweep(silent_south, now - timedelta(minutes=1))
    assert decision.transitions == [] or all(t.monitor != SHOP for t in decision.transitions)

    since = began.strftime("%Y-%m-%d %H:%M UTC")
    words = (
        f"up from eu-west and us-east, no report from {SOUTH}; failing from {SOUTH} since {since}"
    )
    lines = records.status_lines()
    assert f"[{words}]" in lines[SHOP], lines
    assert records.status_json()[SHOP]["seen"][SOUTH] == "no report"
    regions, _ = records.status_page()
    assert regions[SHOP] == words
    assert records.metrics()["vigil_monitor_location_reported"][(SHOP, SOUTH)] == 0
    assert presentation.sweep_summary(decision, 0)["locations"][SHOP] == words
