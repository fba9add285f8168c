"""Every duty once, end to end, as an operator meets it: a real Prefect server
(`prefect server start`), each duty's `vigil` command run as its own process against local
services (an HTTP service to sweep, a fresh PostgreSQL database backed up to S3 (moto)
and restored into a scratch database, a local app to verify a release of), then what the
Prefect UI will show, read back through the Prefect API: a run per duty named for what it
did, the duty's tags, the final state's name, task runs named like the runbook, the
artifacts under their stable keys, and the run's logs (shipped before the process exited).

One more duty is one more `Duty` in DUTIES.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backup_helpers import seed
from tests.deploy_helpers import LocalApp
from tests.fixtures.postgres import libpq_url, throwaway_database
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.receivers import HttpReceiver, Reply
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.targets import HttpTarget

pytestmark = pytest.mark.slow

VIGIL = str(Path(sys.executable).with_name("vigil"))
# Task runs without a task_run_name get Prefect's "-" + 3 hex digits suffix.
SUFFIX = r"(-[0-9a-f]{3})?"


@dataclass(frozen=True)
class Duty:
    """One duty run once from the command line, and what the Prefect UI must show of it."""

    id: str
    argv: list[str]  # after `vigil`; `-c CONFIG` is appended
    flow: str
    run_name: str  # a regular expression for the whole name
    tags: set[str]
    state: str
    tasks: list[str]  # each a regular expression some task run's whole name matches
    artifacts: set[str]
    exit_code: int = 0
    after: tuple[str, ...] = ()  # duties whose records this one needs

    def __str__(self) -> str:
        return self.id


DUTIES = [
    Duty(
        "sweep",
        ["sweep"],
        flow="uptime-sweep",
        run_name=r"sweep \d{4}-\d\d-\d\d \d\d:\d\d",
        tags={"vigil", "uptime"},
        state="Degraded",  # one monitor says {"status": "degraded"}
        tasks=["probe http monitors", "read monitor states", "send alerts", "record sweep"],
        artifacts={"uptime-sweep"},
    ),
    Duty(
        "backup",
        ["backup", "--database", "main"],
        flow="daily-backup",
        run_name="backup main",
        tags={"vigil", "backup"},
        state="Completed",
        tasks=[
            "snapshot main",
            "dump main",
            r"store .*manifest.*",
            r"read back .+",
            "apply retention to main",
        ],
        artifacts={"daily-backup"},
    ),
    Duty(
        "restore-test",
        ["restore-test", "--database", "main"],
        flow="weekly-restore-test",
        run_name="restore-test main",
        tags={"vigil", "restore-test"},
        state="Completed",
        tasks=[
            "pick backup of main",
            r"fetch main-\d{8}T\d{6}Z",
            r"restore into vigil_restore_main_\d{8}_\d{6}",
            r"compare vigil_restore_main_\d{8}_\d{6}",
        ],
        artifacts={"restore-test-main"},
        after=("backup",),
    ),
    Duty(
        "drill",
        ["drill"],
        flow="dr-drill",
        run_name=r"drill \d{4}-\d\d-\d\d \d\d:\d\d",
        tags={"vigil", "drill"},
        state="Completed",
        tasks=["locate offsite backups", "restore main", "check fallbacks", "tear down", "notify"],
        artifacts={"dr-drill"},
        after=("backup",),
    ),
    Duty(
        "deploy-verify",
        ["verify-deploy", "web", "--release", "abc123"],
        flow="deploy-verify",
        run_name="verify web@abc123",
        tags={"vigil", "deploy"},
        state="Completed",
        tasks=[r"measure web@abc123 #1", "notify"],
        artifacts={"deploy-verify-web", "deploy-report-web"},
    ),
    Duty(
        "weekly-report",
        ["report", "--send"],
        flow="weekly-report",
        run_name=r"report \d{4}-\d\d-\d\d",
        tags={"vigil", "report"},
        state="Completed",
        tasks=["compute the report", "publish the report artifact", "send the report"],
        artifacts={"weekly-report"},
        after=("sweep",),
    ),
]


@dataclass
class World:
    """The local services, the config naming them, and the duties run so far."""

    server: PrefectServer
    root: Path
    config: Path
    ran: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def run(self, duty: Duty) -> subprocess.CompletedProcess[str]:
        """Run the duty (and what it needs first) once; later calls return the same result."""
        for name in duty.after:
            self.run(next(d for d in DUTIES if d.id == name))
        if duty.id not in self.ran:
            argv = [VIGIL, *duty.argv, "-c", str(self.config)]
            result = subprocess.run(
                argv,
                cwd=self.root,
                env=self.server.client_env(self.root / "home"),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            self.ran[duty.id] = result
        return self.ran[duty.id]

    def flow_run(self, duty: Duty) -> Any:
        """The one run of the duty's flow with this world's config (the server is shared)."""
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with self.server.client() as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[duty.flow]))
            )
        ours = [r for r in runs if r.parameters.get("config_path") == str(self.config)]
        assert len(ours) == 1, f"{duty.flow}: expected one run, found {[r.name for r in ours]}"
        return ours[0]


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    """A fresh database with tables, indexes, constraints and rows, dropped at the end."""
    with throwaway_database(pg_server_url, "vigil_e2e") as url:
        seed(libpq_url(url))
        yield url


@pytest.fixture(scope="module")
def world(
    prefect_server: PrefectServer,
    pg_server_url: str,
    database: str,
    s3_server: S3Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    bucket = s3_server.new_bucket("vigil-e2e")
    s3 = {
        "endpoint_url": s3_server.url,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    }
    service = HttpTarget()
    service.set("/health")
    service.set("/search", body={"status": "degraded"})
    inbox = HttpReceiver(Reply(200, "ok"))
    app = LocalApp.create(root / "app")
    app.add_release("abc123", "good")
    started = app.deploy("abc123")
    assert started.returncode == 0, started.stderr
    config = {
        "store": {"url": f"sqlite:///{root / 'vigil.db'}"},
        "channels": {"inbox": {"type": "webhook", "url": inbox.url}},
        "routes": {s: ["inbox"] for s in ("critical", "high", "medium", "low")},
        "monitors": [
            {"name": "api", "url": service.url("/health")},
            {"name": "search", "url": service.url("/search")},
        ],
        "databases": [
            {
                "name": "main",
                "url": database,
                "critical_tables": ["users", "monitors", "audit.events"],
                "min_rows": {"users": 1},
            }
        ],
        "backup": {"storage": f"s3://{bucket}/vigil", "s3": s3},
        "restore_test": {"scratch_url": pg_server_url, "jobs": 1},
        "drill": {"target_url": pg_server_url, "fallbacks": [service.url("/health")]},
        "deploys": {"web": app.target()},
    }
    path = root / "vigil.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        yield World(prefect_server, root, path.resolve())
    finally:
        app.stop()
        inbox.close()
        service.close()


@pytest.mark.parametrize("duty", DUTIES, ids=str)
def test_duty_run_reads_like_the_runbook_in_prefect(world: World, duty: Duty) -> None:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    result = world.run(duty)
    output = result.stdout + result.stderr
    assert result.returncode == duty.exit_code, output
    assert "Traceback" not in output, output

    run = world.flow_run(duty)
    assert re.fullmatch(duty.run_name, run.name), run.name
    assert duty.tags <= set(run.tags), run.tags
    assert run.state is not None
    assert run.state.name == duty.state, run.state.message
    with world.server.client() as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    names = sorted(t.name for t in task_runs)
    for wanted in duty.tasks:
        assert any(re.fullmatch(wanted + SUFFIX, n) for n in names), f"{wanted!r} not in {names}"
    assert duty.artifacts <= {a.key for a in artifacts}
    assert any(f"Finished in state {duty.state}" in log.message for log in logs), [
        log.message for log in logs
    ]
