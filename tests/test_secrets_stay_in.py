"""Secrets stay in, end to end: distinctive secrets are planted in every kind of config value
(URL passwords of the store, databases, scratch and drill servers and monitors; a query
token; Authorization and API-key headers; a webhook path; the heartbeat URL; the S3 secret;
a `${VAR}`; a password with an unencoded `@`), every duty runs through the `vigil` command
against a real Prefect server, failures included (a target that echoes its credentials, an
unreachable database, a failing heartbeat, a bad release rolled back, a database whose URL
cannot be parsed as meant), and every output is searched for them:

stdout and stderr of every command; Prefect's API (flow and task runs with their names,
parameters and state messages, logs, artifacts); the records store (every row of every
table); alerts as received; the status page; the HTML and JSON report; the metrics file;
the drill's report file; backup objects, their keys and their metadata.

PostgreSQL here trusts local connections, so a planted password does not stop a duty.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import yaml

from tests.backup_helpers import seed
from tests.deploy_helpers import LocalApp
from tests.fixtures.postgres import throwaway_database
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.receivers import HttpReceiver, Reply
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.targets import HttpTarget
from tests.ports import free_port

pytestmark = pytest.mark.slow

VIGIL = str(Path(sys.executable).with_name("vigil"))
# What each command printed, kept to read when a search fails.
OUTPUTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "secrets-stay-in"
SECRETS = {
    "store": "Pl4nted-store-pw",
    "database": "Pl4nted-db-pw",
    "odd": "Ambig-xq7@odd-pw-9z",
    "scratch": "Pl4nted-scratch-pw",
    "drill": "Pl4nted-drill-pw",
    "basic": "Pl4nted-basic-pw",
    "query": "Pl4nted-query-token",
    "bearer": "Pl4nted-bearer-0123456789",
    "api_key": "Pl4nted-api-key",
    "pg_monitor": "Pl4nted-pgmon-pw",
    "hook_path": "Pl4nted-hook-path-0123456789",
    "hook_header": "Pl4nted-hook-header",
    "heartbeat": "Pl4nted-heartbeat-0123456789",
    "s3": "Pl4nted-s3-secret",
    "variable": "Pl4nted-from-env",
    "fallback": "Pl4nted-fallback-pw",
    "deploy_pw": "Pl4nted-deploy-pw",
    "deploy_token": "Pl4nted-deploy-token",
}
# What the secret's owner would recognise of it: the whole value and its distinctive part.
NEEDLES = sorted(
    {v for v in SECRETS.values()} | {p for v in SECRETS.values() for p in v.split("@")}
)


@pytest.fixture(scope="module")
def world(
    prefect_server: PrefectServer,
    s3_server: S3Endpoint,
    pg_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Everything the duties talk to, the config with the planted secrets, and a place to
    collect what they wrote."""
    root = tmp_path_factory.mktemp("leaks")
    target, hook = HttpTarget(), HttpReceiver(Reply(200, "ok"))
    target.set("/basic")
    # A hostile target: it echoes the credentials it was sent, and fails.
    echo = f"Authorization: Bearer {SECRETS['bearer']}; X-Api-Key: {SECRETS['api_key']}"
    target.set(f"/token?access_token={SECRETS['query']}", status=500, body={"echo": echo})
    target.set("/fallback", status=503, body={"seen": f"fb:{SECRETS['fallback']}"})
    app = LocalApp.create(root / "app")
    app.add_release("r1-good", "good")
    app.add_release("r2-bad", "bad")
    app.deploy("r1-good")
    bucket = s3_server.new_bucket("leaks")
    with (
        throwaway_database(pg_server_url, "vigil_leak_store") as store_db,
        throwaway_database(pg_server_url, "vigil_leak_app") as app_db,
    ):
        seed(app_db)
        config = _config(root, target, hook, app, s3_server, bucket, store_db, app_db)
        env = prefect_server.client_env(
            root / "home", LEAK_SECRET=SECRETS["variable"], NO_COLOR="1"
        )
        yield {
            "root": root,
            "config": config,
            "env": env,
            "hook": hook,
            "app": app,
            "s3": s3_server,
            "bucket": bucket,
            "store_db": store_db,
            "outputs": {},
        }
    app.stop()
    target.close()
    hook.close()


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user_host = rest.split("@", 1)[-1]
    return f"{scheme}://postgres:{password}@{user_host}"


def _config(
    root: Path,
    target: HttpTarget,
    hook: HttpReceiver,
    app: LocalApp,
    s3: S3Endpoint,
    bucket: str,
    store_db: str,
    app_db: str,
) -> Path:
    closed = free_port()
    server = app_db.rsplit("/", 1)[0]
    basic = target.url("/basic").replace("http://", f"http://ops:{SECRETS['basic']}@")
    health = f"http://ops:{SECRETS['deploy_pw']}@127.0.0.1:{app.port}/health"
    body = {
        "store": {"url": _with_password(store_db, SECRETS["store"])},
        "channels": {
            "hook": {
                "type": "webhook",
                "url": hook.url_for(f"/hook/{SECRETS['hook_path']}"),
                "headers": {"X-Api-Key": SECRETS["hook_header"], "X-Extra": "${LEAK_SECRET}"},
            }
        },
        "routes": {s: ["hook"] for s in ("critical", "high", "medium", "low")},
        "sweep": {
            "heartbeat_url": f"http://127.0.0.1:{closed}/ping/{SECRETS['heartbeat']}",
        },
        "monitors": [
            {"name": "basic", "url": basic, "public": True, "failure_threshold": 1},
            {
                "name": "token",
                "url": target.url(f"/token?access_token={SECRETS['query']}"),
                "headers": {
                    "Authorization": f"Bearer {SECRETS['bearer']}",
                    "X-Api-Key": SECRETS["api_key"],
                },
                "public": True,
                "failure_threshold": 1,
            },
            {
                "name": "pg",
                "type": "postgres",
                "url": f"postgresql://postgres:{SECRETS['pg_monitor']}@127.0.0.1:{closed}/x",
                "query": "select 1",
                "failure_threshold": 1,
            },
        ],
        "databases": [
            {"name": "main", "url": _with_password(app_db, SECRETS["database"])},
            # An '@' in the password, encoded as it must be (an unencoded one is refused when
            # the config is read); the database does not exist, so this backup fails.
            {"name": "odd", "url": f"postgresql://postgres:{quote(SECRETS['odd'])}@127.0.0.1/x"},
        ],
        "backup": {
            "storage": f"s3://{bucket}/vigil",
            "s3": {
                "endpoint_url": s3.url,
                "region": "us-east-1",
                "access_key_id": "testing",
                "secret_access_key": SECRETS["s3"],
            },
        },
        "restore_test": {"scratch_url": _with_password(f"{server}/postgres", SECRETS["scratch"])},
        "drill": {
            "target_url": _with_password(f"{server}/postgres", SECRETS["drill"]),
            "fallbacks": [
                target.url("/fallback").replace("http://", f"http://fb:{SECRETS['fallback']}@")
            ],
        },
        "deploys": {
            "web": app.target(
                health={
                    "url": f"{health}?token={SECRETS['deploy_token']}",
                    "conditions": ["[STATUS] == 200"],
                    "timeout": "1s",
                },
                pages=[f"http://ops:{SECRETS['deploy_pw']}@127.0.0.1:{app.port}/"],
            )
        },
        "status_page": {"show_errors": True, "out": str(root / "site")},
    }
    path = root / "vigil.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def vigil(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """A `vigil` command as an operator types it; its output kept for the search."""
    done = subprocess.run(
        [VIGIL, *args, "-c", str(world["config"])],
        cwd=world["root"],
        env=world["env"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    world["outputs"][" ".join(args)] = done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def ran(world: dict[str, Any]) -> dict[str, Any]:
    """Every duty, once, with its failures."""
    root = world["root"]
    vigil(world, "check-config")
    vigil(world, "sweep")
    vigil(world, "backup")
    vigil(world, "backups", "--json")
    vigil(world, "restore-test")
    vigil(world, "drill", "--report", str(root / "drill.md"))
    world["app"].deploy("r2-bad")
    vigil(world, "verify-deploy", "web", "--release", "r2-bad")
    vigil(world, "status")
    vigil(world, "report", "--json", "--html", str(root / "report.html"))
    vigil(world, "status-page")
    vigil(world, "metrics", "--textfile", str(root / "vigil.prom"))
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    for name, text in world["outputs"].items():
        (OUTPUTS / (name.split()[0] + ".txt")).write_text(text)
    return world


def leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {needle}" for needle in NEEDLES if needle in text]


def test_no_secret_in_what_the_commands_print(ran: dict[str, Any]) -> None:
    found = [leak for name, text in ran["outputs"].items() for leak in leaks(name, text)]
    assert found == [], found


def test_no_command_printed_a_traceback(ran: dict[str, Any]) -> None:
    """Every failure here is a finding (a target down, a heartbeat refused, a release rolled
    back), not a bug."""
    found = [name for name, text in ran["outputs"].items() if "Traceback" in text]
    assert found == [], {name: ran["outputs"][name][-3000:] for name in found}


def test_no_secret_in_prefects_api(ran: dict[str, Any], prefect_server: PrefectServer) -> None:
    with prefect_server.client() as client:
        flow_runs = client.read_flow_runs(limit=200)
        task_runs = client.read_task_runs(limit=200)
        logs = client.read_logs(limit=200)
        more_logs = client.read_logs(limit=200, offset=200)
        artifacts = client.read_artifacts(limit=200)
    assert flow_runs and task_runs and logs and artifacts
    found = []
    for run in flow_runs:
        found += leaks(f"flow run {run.name}", run.model_dump_json())
    for task in task_runs:
        found += leaks(f"task run {task.name}", task.model_dump_json())
    for log in [*logs, *more_logs]:
        found += leaks(f"log {log.message[:60]!r}", log.message)
    for artifact in artifacts:
        found += leaks(f"artifact {artifact.key}", artifact.model_dump_json())
    assert found == [], found


def test_no_secret_in_the_records(ran: dict[str, Any]) -> None:
    found = []
    with psycopg.connect(ran["store_db"]) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        for table in tables:
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            found += leaks(f"table {table}", json.dumps(rows, default=str))
    assert tables and found == [], found


def test_no_secret_in_alerts_pages_reports_metrics_or_files(ran: dict[str, Any]) -> None:
    root: Path = ran["root"]
    hook: HttpReceiver = ran["hook"]
    assert hook.requests, "the failures were alerted"
    found = []
    for request in hook.requests:  # its URL and headers are the channel's own secrets
        found += leaks(f"alert {request.json().get('title')!r}", request.text)
    files = [root / "drill.md", root / "report.html", root / "vigil.prom"]
    files += sorted((root / "site").iterdir())
    for path in files:
        found += leaks(path.name, path.read_text(errors="replace"))
    assert found == [], found


def test_no_secret_in_backup_objects_or_their_metadata(ran: dict[str, Any]) -> None:
    client = ran["s3"].client()
    listed = client.list_objects_v2(Bucket=ran["bucket"]).get("Contents", [])
    assert listed, "a backup was stored"
    found = []
    for item in listed:
        key = item["Key"]
        found += leaks(f"key {key}", key)
        head = client.head_object(Bucket=ran["bucket"], Key=key)
        found += leaks(f"metadata of {key}", json.dumps(head.get("Metadata", {})))
        if key.endswith(".json"):
            body = client.get_object(Bucket=ran["bucket"], Key=key)["Body"].read()
            found += leaks(key, body.decode(errors="replace"))
    assert found == [], found


def test_each_runs_output_tells_its_story(ran: dict[str, Any]) -> None:
    """Read only a run's logs and know what happened (the same lines reach the UI): every
    duty above says what it did, with its figures, and whom it told."""
    out = ran["outputs"]
    expected = {
        "sweep": ["pg: UNKNOWN -> DOWN", "sent to hook (webhook)", "(sweep.heartbeat_url)"],
        "backup": ["main: dumped main-", "verified: ", "retention of main: kept 1"],
        "restore-test": ["main: fetched main-", "main: restored into vigil_restore_main_"],
        "drill": ["phase locate offsite backups: FAILED", "phase check fallbacks: FAILED"],
    }
    missing = {
        name: [
            line
            for line in lines
            if not any(line in t for k, t in out.items() if k.startswith(name))
        ]
        for name, lines in expected.items()
    }
    assert all(not lines for lines in missing.values()), missing
    assert "checks passed" in out["restore-test"], out["restore-test"][-2000:]
