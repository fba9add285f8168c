"""`vigil verify-deploy` as a pipeline's step runs it: a real `vigil` process against a real
Prefect server and a real local app. Each outcome a pipeline acts on differently exits with
its own code (vigil/deploy/exits.py, the README's table), `--json` names the flow run and
links it, and a run waiting for the target's lock says whom it waits for; one that gives up
ends as a one-line finding, no traceback, on the terminal and in the run's logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_helpers import LocalApp, write_config
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.receivers import HttpReceiver
from tests.ports import free_port
from vigil.deploy.exits import EXIT_CODES, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
CRASH_WORDS = ("Traceback", "unexpected exception", "Engine execution exited")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    for name, mode in (("r1", "good"), ("r2", "bad"), ("r3", "degraded"), ("r4", "bad")):
        local.add_release(name, mode)
    yield local
    local.stop()


def vigil(
    server: PrefectServer, home: Path, config: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "-c", str(config), *args],
        env=server.client_env(home) | env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def spawn(
    server: PrefectServer, home: Path, config: Path, log: Path, *args: str
) -> subprocess.Popen[bytes]:
    """A `vigil` process in the background, its terminal output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vigil", "-c", str(config), *args],
            env=server.client_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def finish(process: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> tuple[int, str]:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode, log.read_text(errors="replace")


def verified(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """The `--json` document of a run that exited `code`, with no crash on its terminal."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert not any(word in output for word in CRASH_WORDS), output
    document = json.loads(result.stdout)
    assert document["exit_code"] == code
    return document


def test_the_readme_lists_the_exit_codes_the_commands_use() -> None:
    assert markdown_table() in README.read_text(encoding="utf-8")
    codes = [c.code for c in EXIT_CODES]
    assert len(set(codes)) == len(codes)


def test_each_outcome_exits_with_its_own_code_and_json_links_the_flow_run(
    prefect_server: PrefectServer, tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    store = f"sqlite:///{tmp_path / 'vigil.db'}"
    home = tmp_path / "home"

    def config(name: str, **settings: Any) -> Path:
        target = {"web": app.target(**settings)}
        return write_config(tmp_path / name, store, webhook_receiver.url, target)

    pipeline = config("vigil.yaml")
    step = ("verify-deploy", "web", "--json", "--release")

    app.deploy("r1")
    passed = verified(vigil(prefect_server, home, pipeline, *step, "r1"), 0)
    assert (passed["verdict"], passed["release"], passed["outcome"]) == ("passed", "r1", "passed")
    run_id = passed["flow_run_id"]
    assert passed["flow_run_url"] == f"{prefect_server.url}/runs/flow-run/{run_id}"
    with prefect_server.client() as client:
        run = client.read_flow_run(run_id)
    assert run.name == "verify web@r1" and run.state is not None and run.state.is_completed()

    app.deploy("r2")
    dry = verified(vigil(prefect_server, home, pipeline, *step, "r2", "--dry-run"), 7)
    assert dry["verdict"] == "dry_run" and app.linked() == "r2"

    rolled = verified(vigil(prefect_server, home, pipeline, *step, "r2"), 4)
    assert (rolled["verdict"], rolled["rolled_back_to"]) == ("rolled_back", "r1")
    assert app.linked() == "r1"

    app.deploy("r3")
    degraded = verified(vigil(prefect_server, home, pipeline, *step, "r3"), 3)
    assert degraded["verdict"] == "degraded" and app.linked() == "r3"

    app.deploy("r4")
    broken = {"type": "command", "command": "echo 'PaaS says 401' >&2; exit 3", "timeout": "5s"}
    failed_rollback = config("broken-rollback.yaml", rollback=broken)
    stuck = verified(vigil(prefect_server, home, failed_rollback, *step, "r4"), 5)
    assert stuck["verdict"] == "rollback_failed"

    unguarded = app.target()
    del unguarded["rollback"]
    no_rollback = write_config(
        tmp_path / "none.yaml", store, webhook_receiver.url, {"web": unguarded}
    )
    kept = verified(vigil(prefect_server, home, no_rollback, *step, "r4"), 6)
    assert kept["verdict"] == "failed" and app.linked() == "r4"

    app.deploy("r1")
    plain = vigil(prefect_server, home, pipeline, "verify-deploy", "web", "--release", "r1")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert f"Flow run: {prefect_server.url}/runs/flow-run/" in plain.stdout


def test_a_run_that_cannot_start_exits_could_not_run_and_bad_usage_exits_2(
    prefect_server: PrefectServer, tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    store = f"sqlite:///{tmp_path / 'vigil.db'}"
    home = tmp_path / "home"
    good = write_config(tmp_path / "vigil.yaml", store, webhook_receiver.url, {"web": app.target()})
    step = ("verify-deploy", "web", "--release", "r1")

    broken = tmp_path / "broken.yaml"
    broken.write_text(good.read_text().replace("window: 600ms", "window: soon"))
    result = vigil(prefect_server, home, broken, *step)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "deploys.web.window" in result.stderr and "Traceback" not in result.stderr

    target = app.target()
    target["health"]["url"] = "ftp://127.0.0.1/health"
    unprobeable = write_config(tmp_path / "ftp.yaml", store, webhook_receiver.url, {"web": target})
    result = vigil(prefect_server, home, unprobeable, *step)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "deploys.web.health" in result.stderr and "not an http(s) URL" in result.stderr

    nowhere = f"http://127.0.0.1:{free_port()}/api"
    result = vigil(prefect_server, home, good, *step, PREFECT_API_URL=nowhere)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "cannot reach Prefect" in result.stderr

    assert (
        vigil(prefect_server, home, good, "verify-deploy", "api", "--release", "r1").returncode == 2
    )
    assert vigil(prefect_server, home, good, "verify-deploy", "web").returncode == 2


def api_logs(server: PrefectServer, flow_run_id: str) -> list[tuple[int, str]]:
    """(level, message) of the run's logs in the API, once they stop arriving."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found: list[tuple[int, str]] = []
    for _ in range(20):
        with server.client() as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        now = [(log.level, log.message) for log in logs]
        if now and now == found:
            return found
        found = now
        time.sleep(0.5)
    return found


def test_waiting_for_the_lock_says_whom_for_and_giving_up_is_one_line(
    prefect_server: PrefectServer, tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    store = f"sqlite:///{tmp_path / 'vigil.db'}"
    home = tmp_path / "home"

    def config(name: str, **settings: Any) -> Path:
        target = {"web": app.target(**settings)}
        return write_config(tmp_path / name, store, webhook_receiver.url, target)

    app.deploy("r1")
    log = tmp_path / "holder.log"
    slow = config("holder.yaml", window="20s", interval="2s")
    holder = spawn(prefect_server, home, slow, log, "verify-deploy", "web", "--release", "r1")
    try:
        deadline = time.monotonic() + 90
        while "measurement 1/11" not in log.read_text() and time.monotonic() < deadline:
            assert holder.poll() is None, log.read_text()
            time.sleep(0.2)
        impatient = vigil(
            prefect_server,
            home,
            config("impatient.yaml", lock_timeout="7s"),
            "verify-deploy",
            "web",
            "--release",
            "r1",
            "--json",
        )
    finally:
        code, output = finish(holder, log)
    assert code == 0, output
    assert "r1 measurement 1/11: Successful" in output and "measurement 11/11" in output, output

    terminal = impatient.stdout + impatient.stderr
    assert impatient.returncode == 8, terminal
    document = json.loads(impatient.stdout)
    assert document["verdict"] == "locked"
    lines = terminal.splitlines()
    waiting = [line for line in lines if "waiting for the lock 'deploy-web'" in line]
    assert waiting, terminal
    assert "held by the deploy verification of r1 (flow run " in waiting[0]
    assert "(lock_timeout 7s)" in waiting[0]
    assert not any(word in terminal for word in CRASH_WORDS), terminal
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 1 and "LockTimeout: web: waited lock_timeout (7s)" in errors[0], terminal

    logs = api_logs(prefect_server, document["flow_run_id"])
    assert any("waiting for the lock 'deploy-web'" in message for _, message in logs), logs
    assert not any(word in message for _, message in logs for word in CRASH_WORDS), logs
    assert [m for level, m in logs if level >= 40] == [
        next(m for _, m in logs if m.startswith("LockTimeout: "))
    ], logs
