"""The DR drill end to end: a real backup of a real database in S3 (moto over HTTP),
recovered into drill databases on the real PostgreSQL server, with real fallbacks, a real
app started against the restored database, real runbook steps; and after every drill,
nothing left behind: no `vigil_drill_` database, no process."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy import select

from flows.backup import daily_backup
from flows.drill import dr_drill
from tasks import runbook
from tests.backup_helpers import seed
from tests.fixtures.postgres import throwaway_database
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.targets import HttpTarget
from tests.helpers import markdown_artifact, run, write_config
from tests.ports import free_port
from vigil.drill_report import ARTIFACT_KEY
from vigil.store import Drill, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")

APP = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import psycopg

    URL = os.environ["VIGIL_DRILL_DATABASE_URL"]

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            with psycopg.connect(URL) as db:
                users = db.execute("SELECT count(*) FROM users").fetchone()[0]
            ok = users == 40
            body = json.dumps({"status": "ok" if ok else "down", "users": users}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
    """
)


def drill_databases(server_url: str) -> set[str]:
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_drill\\_%'"
        )
        return {str(r[0]) for r in rows}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Drills:
    """One database backed up once to a bucket, and configs that drill it."""

    def __init__(self, tmp_path: Path, source: str, server: str, s3: S3Endpoint, bucket: str):
        self.tmp_path, self.source, self.server, self.s3, self.bucket = (
            tmp_path,
            source,
            server,
            s3,
            bucket,
        )
        self.hook: HttpReceiver | None = None
        self.name = f"shop_{secrets.token_hex(4)}"
        self.storage = f"s3://{bucket}/vigil"
        self.s3_settings: dict[str, Any] = {
            "endpoint_url": s3.url,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }

    def config(self, **settings: Any) -> str:
        body = {
            "databases": [{"name": self.name, "url": self.source}],
            "backup": {"storage": self.storage, "s3": self.s3_settings},
            "drill": {"target_url": self.server, "rto": "10m", "rpo": "1h", **settings},
        }
        dumped = yaml.safe_dump(body, sort_keys=False)
        hook = self.hook.url if self.hook else None
        return str(write_config(self.tmp_path, dumped, hook=hook))

    def drill(self, **settings: Any) -> tuple[Any, dict[str, Any]]:
        state, summary = run(dr_drill, config_path=self.config(**settings))
        return state, summary

    def records(self) -> list[Drill]:
        url = f"sqlite:///{self.tmp_path / 'vigil.db'}"
        with open_store(url) as store, store.session() as session:
            return list(session.scalars(select(Drill).order_by(Drill.id)))

    def alerts(self) -> list[dict[str, Any]]:
        assert self.hook is not None
        return [b for b in self.hook.json_bodies() if b["duty"] == "dr-drill"]


@pytest.fixture(scope="module")
def backed_up(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server_url: str,
    s3_server: S3Endpoint,
    prefect_api: None,
) -> Iterator[Drills]:
    """One good backup in S3 that every drill of this module recovers from."""
    bucket = s3_server.new_bucket()
    with throwaway_database(pg_server_url) as source:
        seed(source)
        made = Drills(tmp_path_factory.mktemp("drill"), source, pg_server_url, s3_server, bucket)
        state, _ = run(daily_backup, config_path=made.config())
        assert state.is_completed(), state.message
        yield made


@pytest.fixture
def drills(
    backed_up: Drills,
    webhook_receiver: HttpReceiver,
    pg_server_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Drills]:
    """The shared backup, this test's webhook receiver, and the teardown promise checked:
    no drill database and no remembered drill process is left after the test."""
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    backed_up.hook = webhook_receiver
    backed_up.storage = f"s3://{backed_up.bucket}/vigil"
    backed_up.s3_settings["endpoint_url"] = backed_up.s3.url
    yield backed_up
    assert drill_databases(pg_server_url) == set()
    assert runbook.remembered() == []


def by_phase(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in summary["phases"]}


def test_a_drill_recovers_from_the_offsite_copy_and_meets_both_objectives(
    drills: Drills, http_target: HttpTarget
) -> None:
    fallback = http_target.set("/fallback/health", 200)
    steps = [{"name": "announce", "command": "echo drill under way", "timeout": "10s"}]

    state, summary = drills.drill(fallbacks=[fallback], steps=steps)

    assert state.is_completed() and state.name == "Completed", state.message
    assert summary["status"] == "passed", summary["action_items"]
    assert summary["rto_met"] and summary["rpo_met"]
    assert 0 < summary["rto_s"] < 600 and 0 < summary["rpo_s"] < 3600
    phases = by_phase(summary)
    assert list(phases) == [
        "locate offsite backups",
        "prepare the rehearsal server",
        f"restore {drills.name}",
        "check fallbacks",
        "step announce",
        "tear down",
    ]
    assert all(p["verdict"] == "ok" for p in phases.values())
    restored = {f["name"]: f for f in phases[f"restore {drills.name}"]["findings"]}
    assert restored["rows public.users"]["observed"] == "40"
    assert restored["rows audit.events"]["observed"] == "500"
    assert summary["databases"][0]["restored_as"].startswith(f"vigil_drill_{drills.name}_")
    # the RTO ends with the last recovery phase, before teardown
    assert (
        summary["rto_s"]
        <= (_at(phases["tear down"]["started_at"]) - _at(summary["declared_at"])) + 0.01
    )
    record = drills.records()[-1]
    assert (record.status, record.rto_met, record.rpo_met) == ("passed", True, True)
    assert record.report and record.report.startswith("# DR drill")
    assert "| RTO |" in record.report and "## Action items\n\n- none" in record.report
    [alert] = drills.alerts()
    assert (alert["severity"], alert["title"]) == ("low", "DR drill passed")
    report = markdown_artifact(ARTIFACT_KEY)
    assert report == record.report


def test_a_backup_older_than_the_rpo_misses_the_objective(drills: Drills) -> None:
    time.sleep(1.1)

    state, summary = drills.drill(rpo="1s")

    assert state.is_failed() and state.name == "ObjectiveMissed"
    assert summary["status"] == "missed" and summary["rto_met"] and not summary["rpo_met"]
    assert summary["rpo_s"] > 1
    locate = by_phase(summary)["locate offsite backups"]
    assert locate["verdict"] == "FAILED"
    assert any("older than the 1s RPO" in item for item in summary["action_items"])
    assert any(item.startswith("RPO missed") for item in summary["action_items"])
    [alert] = drills.alerts()
    assert alert["severity"] == "high"


def test_no_offsite_storage_fails_the_drill_with_that_finding(
    drills: Drills, tmp_path: Path
) -> None:
    drills.storage = (tmp_path / "local-backups").as_uri()

    state, summary = drills.drill()

    assert state.name == "RecoveryFailed"
    assert summary["status"] == "failed" and not summary["rto_met"] and not summary["rpo_met"]
    assert summary["action_items"][0].startswith("locate offsite backups: no offsite storage")
    restore = by_phase(summary)[f"restore {drills.name}"]
    assert restore["verdict"] == "skipped"
    assert by_phase(summary)["tear down"]["verdict"] == "ok"
    [alert] = drills.alerts()
    assert alert["severity"] == "critical"
    assert "no offsite storage" in alert["summary"]


def test_unreachable_offsite_storage_is_the_locate_phase_finding(
    drills: Drills, closed_port: int
) -> None:
    drills.s3_settings["endpoint_url"] = f"http://127.0.0.1:{closed_port}"

    _state, summary = drills.drill()

    assert summary["status"] == "failed"
    locate = by_phase(summary)["locate offsite backups"]
    assert "offsite storage unreachable" in locate["findings"][0]["problem"]
    assert by_phase(summary)["tear down"]["verdict"] == "ok"


def test_a_fallback_that_is_down_is_an_action_item(drills: Drills, http_target: HttpTarget) -> None:
    good = http_target.set("/ok", 200)
    bad = http_target.set("/fallback", 503)

    state, summary = drills.drill(fallbacks=[good, bad])

    assert state.name == "Degraded" and summary["status"] == "findings"
    findings = by_phase(summary)["check fallbacks"]["findings"]
    assert [f["ok"] for f in findings] == [True, False]
    assert any(f"{bad} is not serving: [STATUS] 503" in i for i in summary["action_items"])
    [alert] = drills.alerts()
    assert alert["severity"] == "high"


def test_the_app_starts_against_the_restored_database_and_serves(
    drills: Drills, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    port = free_port()
    check = {
        "start": f"{sys.executable} {app} {port}",
        "health": f"http://127.0.0.1:{port}/health",
        "timeout": "30s",
    }

    _state, summary = drills.drill(app_check=check)

    assert summary["status"] == "passed", summary["action_items"]
    [finding] = by_phase(summary)["app check"]["findings"]
    assert finding["ok"] and "status 200" in finding["observed"]
    assert not listening(port)


def test_an_app_that_never_becomes_healthy_fails_the_recovery(
    drills: Drills, tmp_path: Path
) -> None:
    port = free_port()
    marker, pid = tmp_path / "stopped", tmp_path / "app.pid"
    check = {
        "start": f"echo $$ > {pid}; exec sleep 60",
        "health": f"http://127.0.0.1:{port}/health",
        "stop": f"touch {marker}",
        "timeout": "2s",
    }

    state, summary = drills.drill(app_check=check)

    assert state.name == "RecoveryFailed" and summary["status"] == "failed"
    [finding] = by_phase(summary)["app check"]["findings"]
    assert "never became healthy" in finding["problem"]
    assert marker.exists()  # the stop command ran
    assert not _alive(pid)


def test_a_step_that_hangs_is_stopped_at_its_timeout(drills: Drills, tmp_path: Path) -> None:
    pid = tmp_path / "step.pid"
    steps = [
        {"name": "hang", "command": f"echo $$ > {pid}; exec sleep 45", "timeout": "1s"},
        {"name": "after", "command": "true", "timeout": "5s"},
    ]

    _state, summary = drills.drill(steps=steps)

    assert summary["status"] == "findings"
    phases = by_phase(summary)
    assert phases["step hang"]["verdict"] == "FAILED"
    assert "did not finish within its 1s timeout" in phases["step hang"]["findings"][0]["problem"]
    assert phases["step after"]["verdict"] == "ok"  # the drill went on
    assert phases["step hang"]["duration_s"] < 10
    assert not _alive(pid)


def test_a_crashed_drills_leftovers_are_dropped_and_the_previous_drill_compared(
    drills: Drills, pg_server_url: str
) -> None:
    leftover = f"vigil_drill_{drills.name}_20200101_000000"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))
    drills.drill()

    _state, summary = drills.drill()

    prepare = by_phase(summary)["prepare the rehearsal server"]
    assert prepare["findings"][0]["observed"] == "none"
    first = drills.records()[-2]
    assert leftover in str(first.findings)
    assert summary["previous"]["status"] == first.status
    assert "## Previous drill" in summary["report"] and "| RTO |" in summary["report"]


def _at(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _alive(pid_file: Path) -> bool:
    """Whether the process that wrote `pid_file` still runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_vigil_drill_writes_the_report_and_exits_by_the_verdict(
    drills: Drills, tmp_path: Path, http_target: HttpTarget
) -> None:
    from typer.testing import CliRunner

    from vigil.cli import app

    report = tmp_path / "drill.md"
    config = drills.config(fallbacks=[http_target.set("/ok", 200)])

    result = CliRunner().invoke(app, ["drill", "-c", config, "--report", str(report)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("DR drill passed: RTO ")
    text = report.read_text()
    assert text.startswith("# DR drill ") and "## Timeline" in text and "check fallbacks" in text
    assert text == drills.records()[-1].report

    config = drills.config(fallbacks=[http_target.set("/down", 503)])
    result = CliRunner().invoke(app, ["drill", "-c", config, "--json"])

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["status"] == "findings" and document["action_items"]


def _drill_in_a_process(drills: Drills, pid: Path) -> subprocess.Popen[bytes]:
    """`vigil drill` as its own process, returned once it hangs in its runbook step."""
    from prefect.settings import PREFECT_API_URL

    step = {"name": "hang", "command": f"echo $$ > {pid}; exec sleep 60", "timeout": "5m"}
    config = drills.config(steps=[step])
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    vigil = Path(sys.executable).with_name("vigil")
    process = subprocess.Popen([str(vigil), "drill", "-c", config], env=env)
    deadline = time.monotonic() + 120
    while not pid.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not pid.exists():
        process.kill()
        raise AssertionError("the drill never reached its step")
    return process


def test_a_drill_stopped_by_sigterm_tears_down_before_it_exits(
    drills: Drills, tmp_path: Path, pg_server_url: str
) -> None:
    """A cancelled served run or a shutdown arrives as SIGTERM: teardown runs on the way out."""
    pid = tmp_path / "step.pid"
    process = _drill_in_a_process(drills, pid)
    try:
        assert len(drill_databases(pg_server_url)) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) != 0
        assert drill_databases(pg_server_url) == set()
        assert not _alive(pid)
    finally:
        process.kill()


def test_a_drill_killed_mid_way_is_cleaned_up_by_the_next(
    drills: Drills, tmp_path: Path, pg_server_url: str
) -> None:
    """kill -9 leaves the drill database and the step's process; the next drill drops and
    stops them before it starts (one drill at a time holds the rehearsal server's lock)."""
    pid = tmp_path / "step.pid"
    process = _drill_in_a_process(drills, pid)
    try:
        process.kill()
        process.wait()
        [left] = drill_databases(pg_server_url)
        assert _alive(pid)

        _, summary = drills.drill()

        prepare = by_phase(summary)["prepare the rehearsal server"]
        assert left in prepare["findings"][0]["observed"]
        assert "process group" in prepare["findings"][0]["observed"]
        assert not _alive(pid)
    finally:
        process.kill()


def test_a_restore_failure_is_the_restore_phase_finding_and_the_drill_goes_on(
    drills: Drills, http_target: HttpTarget
) -> None:
    client = drills.s3.client()
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=drills.bucket)["Contents"]
        if o["Key"].endswith(".dump")
    ]
    original = client.get_object(Bucket=drills.bucket, Key=key)["Body"].read()
    client.put_object(Bucket=drills.bucket, Key=key, Body=original[: len(original) // 2])
    try:
        state, summary = drills.drill(fallbacks=[http_target.set("/ok", 200)])
    finally:
        client.put_object(Bucket=drills.bucket, Key=key, Body=original)

    assert state.name == "RecoveryFailed" and summary["status"] == "failed"
    phases = by_phase(summary)
    restore = phases[f"restore {drills.name}"]
    assert restore["verdict"] == "FAILED" and "checksum mismatch" in restore["error"]
    assert phases["check fallbacks"]["verdict"] == "ok"  # the phases that could run, ran
    assert phases["tear down"]["verdict"] == "ok"
    [alert] = drills.alerts()
    assert alert["severity"] == "critical" and "checksum mismatch" in alert["summary"]
