"""Checks from several locations, for real on this machine: a Prefect server, one process
work pool per location with its own `prefect worker start --pool ...`, the deployments
`vigil locations deploy` registers, and `vigil sweep` fanning out to them.

Each location's worker is given its own name in LOCATION, and every monitor's URL has it
in its path (`/${LOCATION}/api`), so the test decides what each location sees of the same
target, as a regional network problem would: quorum met, quorum not met, a monitor limited
to one location, and a location whose worker was stopped (it does not report). Alerts go to
a local Slack webhook receiver; the runs' logs are read back for tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.fixtures.prefect_server import PrefectServer, prefect_cli, spawn, stop, wait_for
from tests.fixtures.receivers import HttpReceiver, Reply
from tests.fixtures.targets import HttpTarget
from vigil.store import CheckResult, MonitorState, open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
LOCATIONS = ("eu-west", "us-east", "ap-south")
# A worker on a loaded 2-core machine can take many seconds to start a run's process: the
# sweep waits this long past its budget before calling a location silent, and the fixture
# this long for each worker to join its pool, rather than flake. Seen: a worker whose
# "submitting flow run" took 30 s to reach "submitted to infrastructure" while another
# worker submitted at the same instant (two workers' state changes on the test server's one
# SQLite file). A sweep stops waiting as soon as every run is final, so only a run that
# never reports costs the whole grace, and the tests that silence a location on purpose
# fit theirs to the machine (`shorter_grace`).
RUN_GRACE = 60
JOIN_TIMEOUT = 180
# Where a location is made silent on purpose, every sweep waits its whole grace: there the
# grace is this many times the slowest location run seen so far (no less than SHORTEST).
GRACE_PER_SLOWEST_RUN, SHORTEST_GRACE = 3, 10


@dataclass
class Fleet:
    server: PrefectServer
    root: Path
    target: HttpTarget
    slack: HttpReceiver
    prefix: str
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "vigil.yaml"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'vigil.db'}"

    def log(self, location: str) -> Path:
        return self.root / f"worker-{location}.log"

    def see(self, path: str, **statuses: int) -> None:
        """What each location sees at `path` (eu_west=503 ...); the others see 200."""
        for location in LOCATIONS:
            status = statuses.get(location.replace("-", "_"), 200)
            self.target.set(f"/{location}{path}", status=status)

    def write_config(self, grace: float) -> None:
        self.config.write_text(
            CONFIG.format(
                site=self.root / "site",
                store=self.store_url,
                slack=self.slack.url,
                prefix=self.prefix,
                port=self.target.port,
                grace=f"{grace:g}s",
            )
        )

    def shorter_grace(self) -> None:
        """Before sweeps that must wait for a silent location: a grace fitted to how long
        this machine has taken for a location run (created to finished), so the locations
        that do report still make it in time, and the silent one costs seconds, not 30."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        with self.server.client() as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["uptime"]))
            )
        took = [
            (r.end_time - r.created).total_seconds()
            for r in runs
            if r.parameters.get("location") and r.end_time and r.created
        ]
        if took:
            grace = max(SHORTEST_GRACE, GRACE_PER_SLOWEST_RUN * max(took))
            self.write_config(min(grace, RUN_GRACE))

    def vigil(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vigil", "-c", str(self.config), *args],
            env=self.server.client_env(self.root / "parent", LOCATION="parent", COLUMNS="300"),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=240,
        )

    def sweep(self) -> dict[str, Any]:
        done = self.vigil("sweep", "--json")
        assert "Traceback" not in done.stderr, done.stderr
        return json.loads(done.stdout)


CONFIG = """
store: {{url: '{store}'}}
channels: {{slack: {{type: slack, webhook_url: '{slack}'}}}}
routes: {{critical: [slack], high: [slack], medium: [slack], low: [slack]}}
sweep: {{run_grace: {grace}}}
status_page: {{out: '{site}'}}
locations:
  eu-west: {{pool: {prefix}-eu-west, shards: 2}}
  us-east: {{pool: {prefix}-us-east}}
  ap-south: {{pool: {prefix}-ap-south, queue: south}}
monitors:
  - name: api
    url: "http://127.0.0.1:{port}/${{LOCATION:-none}}/api"
    failure_threshold: 1
    timeout: 2s
    public: true
  - name: eu-only
    url: "http://127.0.0.1:{port}/${{LOCATION:-none}}/eu"
    locations: [eu-west]
    failure_threshold: 1
    timeout: 2s
"""


@pytest.fixture(scope="module")
def fleet(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("locations")
    target, slack = HttpTarget(), HttpReceiver(Reply(200, "ok"))
    prefix = f"vigil-loc-{root.name[-6:]}".replace("_", "-")
    fleet = Fleet(prefect_server, root, target, slack, prefix)
    fleet.write_config(RUN_GRACE)
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    try:
        with prefect_server.client() as client:  # as `prefect work-pool create --type process`
            template = ProcessWorker.get_default_base_job_template()
            for location in LOCATIONS:
                pool = WorkPoolCreate(
                    name=f"{prefix}-{location}", type="process", base_job_template=template
                )
                client.create_work_pool(work_pool=pool)
        deployed = fleet.vigil("locations", "deploy")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        south = f"ap-south: deployment uptime-sweep-shard/ap-south on pool {prefix}-ap-south"
        assert f"{south}, queue south" in deployed.stdout
        for location in LOCATIONS:
            env = prefect_server.client_env(
                root / location,
                VIGIL_CHECKOUT=str(ROOT),
                VIGIL_CONFIG=str(fleet.config),
                PREFECT_WORKER_QUERY_SECONDS="1",
                LOCATION=location,
            )
            pool = f"{prefix}-{location}"
            command = prefect_cli("worker", "start", "--pool", pool, "--name", f"w-{location}")
            if location == "ap-south":
                command += ["--work-queue", "south"]
            fleet.workers[location] = spawn(command, env, fleet.log(location), cwd=root)
        with prefect_server.client() as client:
            for location in LOCATIONS:
                pool = f"{prefix}-{location}"
                wait_for(
                    lambda pool=pool: client.read_workers_for_work_pool(pool),
                    JOIN_TIMEOUT,
                    f"the {location} worker to join its pool",
                    fleet.log(location),
                )
        yield fleet
    finally:
        for worker in fleet.workers.values():
            stop(worker)
        target.close()
        slack.close()


def slack_texts(fleet: Fleet, count: int) -> list[str]:
    fleet.slack.wait_for(count, timeout=10)
    time.sleep(0.5)
    return [json.dumps(body) for body in fleet.slack.json_bodies()]


def states(fleet: Fleet) -> dict[str, tuple[str, Any]]:
    with open_store(fleet.store_url) as store, store.session() as session:
        return {s.monitor: (s.state, s.locations) for s in session.scalars(select(MonitorState))}


def no_tracebacks(fleet: Fleet, locations: tuple[str, ...] = LOCATIONS) -> None:
    for location in locations:
        text = fleet.log(location).read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


def test_down_when_the_quorum_sees_it_and_from_the_one_location_it_is_limited_to(
    fleet: Fleet,
) -> None:
    fleet.see("/api", eu_west=503, us_east=503)
    fleet.see("/eu")
    summary = fleet.sweep()
    assert summary["down_monitors"] == ["api"] and summary["up"] == 1, summary
    assert summary["locations"]["api"] == "DOWN from eu-west and us-east, up from ap-south"
    [alert] = slack_texts(fleet, 1)
    assert "api is DOWN" in alert
    assert "DOWN from eu-west and us-east, up from ap-south" in alert
    found = states(fleet)
    assert found["api"][0] == "DOWN"
    assert found["api"][1]["saw"] == {"eu-west": "failed", "us-east": "failed", "ap-south": "ok"}
    assert found["eu-only"] == (
        "UP",
        {"quorum": 1, "saw": {"eu-west": "ok"}, "why": {}, "silent": []},
    )
    [line] = [line for line in fleet.vigil("status").stdout.splitlines() if " api " in line]
    assert "DOWN" in line and "[DOWN from eu-west and us-east, up from ap-south]" in line, line
    assert "[STATUS] 503" in line and line.count("DOWN from") == 1, line
    assert fleet.target.hits.get("/us-east/eu") is None, "eu-only is probed from eu-west only"
    assert fleet.target.hits["/eu-west/eu"] == 1
    runs = location_runs(fleet)
    assert {r.parameters["location"]: r.work_pool_name for r in runs} == {
        loc: f"{fleet.prefix}-{loc}" for loc in LOCATIONS
    }
    shards = sorted(
        (r.parameters["location_shard"], r.parameters["location_shards"])
        for r in runs
        if r.parameters["location"] == "eu-west"
    )
    assert shards == [(0, 2), (1, 2)], "eu-west's monitors are shared by its two shard runs"
    assert summary["silent_runs"] == []
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    assert all(r.labels["prefect.worker.name"] == f"w-{r.parameters['location']}" for r in runs)
    no_tracebacks(fleet)


REGIONAL_WORDS = "failing from ap-south only; up from eu-west and us-east"


def test_below_the_quorum_it_is_up_with_a_regional_warning(fleet: Fleet) -> None:
    fleet.slack.reset()
    fleet.see("/api", ap_south=503)
    fleet.see("/eu", eu_west=503)
    summary = fleet.sweep()
    assert summary["up"] == 1 and summary["down_monitors"] == ["eu-only"], summary
    assert summary["locations"]["api"] == REGIONAL_WORDS
    texts = slack_texts(fleet, 3)
    assert len(texts) == 3, texts
    [recovered] = [t for t in texts if "api RECOVERED" in t]
    [down] = [t for t in texts if "eu-only is DOWN" in t]
    [regional] = [t for t in texts if "api is failing from ap-south only" in t]
    assert "failing from ap-south only; up from eu-west and us-east" in regional
    assert "LOW" in regional and "api is DOWN" not in regional
    assert "DOWN from eu-west" in down and "[STATUS] 503" in down
    assert states(fleet)["api"][0] == "UP"
    status = fleet.vigil("status")
    lines = [line for line in status.stdout.splitlines() if " api " in line]
    assert len(lines) == 1, status.stdout + status.stderr
    [line] = lines
    assert " UP " in line and f"[{REGIONAL_WORDS}]" in line, status.stdout
    with open_store(fleet.store_url) as store, store.session() as session:
        [latest] = session.scalars(
            select(CheckResult)
            .where(CheckResult.monitor == "api")
            .order_by(CheckResult.id.desc())
            .limit(1)
        )
    assert latest.ok and latest.locations["why"] == {"ap-south": "[STATUS] 503, expected < 400"}
    assert recovered
    page = json.loads((fleet.root / "site" / "status.json").read_text())
    [api] = page["services"]
    assert api["state"] == "Operational", api
    assert api["regions"] == REGIONAL_WORDS
    assert f"Seen {REGIONAL_WORDS}</p>" in (fleet.root / "site" / "index.html").read_text()
    no_tracebacks(fleet)

    # Still failing from ap-south: told once, not every sweep. Then up from everywhere.
    fleet.slack.reset()
    fleet.see("/eu")
    summary = fleet.sweep()
    assert summary["transitions"] == ["eu-only: recovered"], summary
    texts = slack_texts(fleet, 1)
    assert [t for t in texts if "ap-south" in t] == [], texts
    fleet.slack.reset()
    fleet.see("/api")
    summary = fleet.sweep()
    assert summary["transitions"] == ["api: regional-recovered"], summary
    [back] = slack_texts(fleet, 1)
    assert "api is up again from every location" in back


def kill_the_asker(handler: Any) -> None:
    """Kill the process whose socket sent this request (found through /proc): a shard
    run's process dying mid-probe, as when its machine goes away."""
    port = handler.client_address[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = {os.readlink(fd) for fd in fd_dir.iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            os.kill(int(fd_dir.parent.name), signal.SIGKILL)
            return


def test_a_shard_of_a_location_that_does_not_report_leaves_its_monitors_unreported(
    fleet: Fleet,
) -> None:
    fleet.slack.reset()
    fleet.see("/api")
    fleet.see("/eu")
    fleet.target.set("/eu-west/eu", on_request=kill_the_asker)
    try:
        summary = fleet.sweep()
    finally:
        fleet.see("/eu")
    assert summary["silent_runs"] == ["eu-west shard 2/2"], summary
    assert summary["unchecked"] == ["eu-only"], "its only location's shard did not report"
    assert summary["locations"]["eu-only"] == "no report from eu-west"
    assert summary["up"] == 1 and summary["down_monitors"] == [], "api: eu-west shard 1 spoke"
    assert states(fleet)["eu-only"][0] == "UP", "kept: counted neither up nor down"
    crashed = [r for r in location_runs(fleet) if r.parameters.get("location_shard") == 1]
    assert [r.state.type.value for r in crashed] == ["CRASHED"], crashed
    assert not fleet.slack.requests


def test_a_location_that_does_not_report_is_named_and_not_counted(fleet: Fleet) -> None:
    fleet.slack.reset()
    fleet.shorter_grace()
    stop(fleet.workers.pop("ap-south"))
    fleet.see("/api", eu_west=503, us_east=503)
    fleet.see("/eu")
    summary = fleet.sweep()
    assert summary["silent_locations"] == ["ap-south"], summary
    assert summary["locations"]["api"] == "DOWN from eu-west and us-east, no report from ap-south"
    assert summary["down_monitors"] == ["api"], "2 of 3 is the quorum whoever stays silent"
    assert summary["silent_runs"] == ["ap-south"], summary
    [down] = slack_texts(fleet, 1)
    assert "api is DOWN" in down and "no report from ap-south" in down
    screen = json.loads(fleet.vigil("status", "--json").stdout)
    [api] = [m for m in screen["monitors"] if m["name"] == "api"]
    assert api["seen"] == {"eu-west": "down", "us-east": "down", "ap-south": "no report"}, api
    assert api["locations"] == "DOWN from eu-west and us-east, no report from ap-south"
    # Now only one of three reports a failure: too few to call it DOWN or UP.
    fleet.slack.reset()
    stop(fleet.workers.pop("us-east"))
    summary = fleet.sweep()
    assert summary["unchecked"] == ["api"] and summary["silent_locations"] == [
        "ap-south",
        "us-east",
    ]
    assert states(fleet)["api"][0] == "DOWN", "kept: no location saw it come back"
    assert not fleet.slack.requests
    ap_runs = [r for r in location_runs(fleet) if r.parameters["location"] == "ap-south"]
    assert ap_runs[-1].state.type.value in ("CANCELLED", "CANCELLING"), ap_runs[-1].state
    no_tracebacks(fleet, ("eu-west",))


def location_runs(fleet: Fleet) -> list[Any]:
    """The location runs of the newest sweep."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with fleet.server.client() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["uptime"]))
        )
    mine = [r for r in runs if r.parameters.get("location")]
    newest = max(mine, key=lambda r: r.created).parameters["sweep_id"]
    return [r for r in mine if r.parameters["sweep_id"] == newest]


def test_locations_deploy_names_a_pool_that_does_not_exist(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(
        "locations:\n  local: {}\n  mars: {pool: no-such-pool-here, queue: q}\n"
        "monitors:\n  - {name: a, url: 'http://127.0.0.1:9/'}\n"
        "  - {name: b, url: 'http://127.0.0.1:9/', locations: [mars]}\n"
    )

    def vigil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vigil", "-c", str(config), *args],
            env=prefect_server.client_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = vigil("locations", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "local: the machine running the sweep; 1 monitor",
        "mars: pool no-such-pool-here, queue q; 2 monitors",
    ]
    deployed = vigil("locations", "deploy")
    assert deployed.returncode == 1, deployed.stdout + deployed.stderr
    assert deployed.stdout.splitlines() == [
        "local: probed by the sweep itself",
        "mars: no work pool 'no-such-pool-here'; create it with "
        "`prefect work-pool create no-such-pool-here --type process`",
    ]
    assert "Traceback" not in deployed.stderr
