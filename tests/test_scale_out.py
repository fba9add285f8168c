"""Beyond one machine, for real on this one: a Prefect server on PostgreSQL behind basic auth,
the records store on PostgreSQL, the deployments of prefect.yaml (`prefect deploy --all`),
two `prefect worker start --pool vigil` processes, and a triggered sweep completing on one
of them; and every `vigil` command working behind the same basic auth, or saying in one line
why it cannot.

One server for the module. Its scheduler is off so the triggered run is the only run: with
it on, the interval schedule's first run would hold uptime-sweep's one slot and the
triggered run would be cancelled (CANCEL_NEW), which is right in production and noise here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.postgres import throwaway_database
from tests.fixtures.prefect_server import PrefectServer, prefect_cli, spawn, spawned, wait_for
from tests.fixtures.targets import HttpTarget
from vigil.store import CheckResult, open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
AUTH = "vigil-admin:correct-horse-battery"
WORKERS = ("vigil-worker-1", "vigil-worker-2")


@pytest.fixture(scope="module")
def prefect_db(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the Prefect server, as an asyncpg URL; dropped after."""
    with throwaway_database(pg_server_url, "vigil_prefect") as url:
        asyncpg = make_url(url).set(drivername="postgresql+asyncpg")
        yield asyncpg.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def server(prefect_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer(
        tmp_path_factory.mktemp("prefect-server"),
        database_url=prefect_db,
        auth=AUTH,
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
    ) as started:
        yield started


def two_monitors(tmp_path: Path, http_target: HttpTarget, store_url: str | None = None) -> Path:
    """A config with two healthy monitors on `http_target`, records in `store_url` (default:
    SQLite in tmp_path)."""
    store_url = store_url or f"sqlite:///{tmp_path / 'vigil.db'}"
    home = http_target.set("/")
    health = http_target.set("/health", body={"status": "ok"})
    path = tmp_path / "vigil.yaml"
    path.write_text(
        f"store: {{url: '{store_url}'}}\n"
        f"monitors:\n  - {{name: home, url: '{home}'}}\n  - {{name: health, url: '{health}'}}\n"
    )
    return path


def test_a_triggered_sweep_completes_on_one_of_two_workers(
    server: PrefectServer, pg_database: str, http_target: HttpTarget, tmp_path: Path
) -> None:
    config = two_monitors(tmp_path, http_target, store_url=pg_database)
    server.cli("work-pool", "create", "vigil", "--type", "process")
    worker_env = server.client_env(
        tmp_path,
        VIGIL_CHECKOUT=str(ROOT),
        VIGIL_CONFIG=str(config),
        PREFECT_WORKER_QUERY_SECONDS="1",
    )
    with spawned() as workers, server.client() as client:
        logs = [tmp_path / f"{name}.log" for name in WORKERS]
        for name, log in zip(WORKERS, logs, strict=True):
            command = prefect_cli("worker", "start", "--pool", "vigil", "--name", name)
            # cwd is not the checkout: only the pull step can take a run there.
            workers.append(spawn(command, worker_env, log, cwd=tmp_path))
        server.cli("deploy", "--all", cwd=ROOT)

        wait_for(
            lambda: {w.name for w in client.read_workers_for_work_pool("vigil")} >= set(WORKERS),
            60,
            "both workers to join the pool",
            *logs,
        )
        deployment = client.read_deployment_by_name("uptime-sweep/uptime-sweep")
        run = client.create_flow_run_from_deployment(deployment.id)
        done = wait_for(lambda: finished(client, run.id), 120, "the sweep to finish", *logs)

    assert done.state.type.value == "COMPLETED", done.state
    assert done.state.message.startswith("2 up")
    assert done.labels["prefect.worker.name"] in WORKERS
    assert done.work_pool_name == "vigil"
    with open_store(pg_database) as store, store.session() as session:
        checks = session.query(CheckResult).filter_by(flow_run_id=str(run.id)).all()
    assert sorted((c.monitor, c.ok) for c in checks) == [("health", True), ("home", True)]


def finished(client: Any, run_id: Any) -> Any:
    run = client.read_flow_run(run_id)
    return run if run.state and run.state.is_final() else None


def test_the_api_is_closed_to_anyone_without_the_password(server: PrefectServer) -> None:
    anonymous = httpx.post(f"{server.api_url}/flow_runs/filter", json={}, timeout=10)
    assert anonymous.status_code == 401
    wrong = httpx.post(f"{server.api_url}/flow_runs/filter", json={}, auth=("x", "y"), timeout=10)
    assert wrong.status_code == 401
    user, password = AUTH.split(":")
    allowed = httpx.post(
        f"{server.api_url}/flow_runs/filter", json={}, auth=(user, password), timeout=10
    )
    assert allowed.status_code == 200


def vigil(server: PrefectServer, config: Path, command: str, credentials: bool | str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "-c", str(config), command],
        env=server.client_env(config.parent, credentials=credentials),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_vigil_sweep_behind_basic_auth(
    server: PrefectServer, http_target: HttpTarget, tmp_path: Path
) -> None:
    done = vigil(server, two_monitors(tmp_path, http_target), "sweep", True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("sweep: 2 up")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "credentials", "says"),
    [
        ("sweep", False, "set PREFECT_API_AUTH_STRING"),
        ("sweep", "vigil-admin:wrong", "PREFECT_API_AUTH_STRING does not match"),
        ("serve", False, "set PREFECT_API_AUTH_STRING"),
    ],
    ids=["sweep-without-credentials", "sweep-with-wrong-credentials", "serve-without-credentials"],
)
def test_without_the_right_credentials_vigil_says_so_in_one_line(
    server: PrefectServer,
    http_target: HttpTarget,
    tmp_path: Path,
    command: str,
    credentials: bool | str,
    says: str,
) -> None:
    done = vigil(server, two_monitors(tmp_path, http_target), command, credentials)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refused vigil (HTTP 401)" in lines[0] and says in lines[0]
    assert server.api_url in lines[0]
    assert not http_target.hits, "nothing runs when the run could not be recorded"
