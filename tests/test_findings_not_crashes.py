"""Findings are not crashes: a served run that ends FAILED for a finding logs one line, with
no traceback and no "unexpected exception", in the terminal and in the UI's logs; a bug still
logs its traceback. The runs are served by a real runner process against the test API, with
logs shipped to the API, and both the runner's output and the API's logs are read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]
SERVE = """
from prefect import serve
from flows.sweep import uptime_sweep
from tests.served.findings import bug_flow, finding_flow

serve(
    uptime_sweep.to_deployment(name="findings-sweep"),
    finding_flow.to_deployment(name="findings"),
    bug_flow.to_deployment(name="bug"),
    limit=4,
    pause_on_shutdown=False,
    print_starting_message=False,
)
"""
DEPLOYMENTS = ("uptime-sweep/findings-sweep", "finding-flow/findings", "bug-flow/bug")
CRASH_WORDS = ("Traceback", "unexpected exception", "cannot be resolved into an exception")


@pytest.fixture(scope="module")
def runner(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A runner serving the flows, its output (the operator's terminal) in the returned file."""
    from prefect.settings import PREFECT_API_URL

    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        "PYTHONPATH": str(ROOT),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        _wait_for_deployments(process, log)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_deployments(process: subprocess.Popen[bytes], log: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                for name in DEPLOYMENTS:
                    client.read_deployment_by_name(name)
                time.sleep(2)
                return
            except ObjectNotFound:
                time.sleep(0.5)
    raise AssertionError("the runner did not register its deployments:\n" + log.read_text())


def served_run(name: str, **parameters: Any) -> Any:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = run_deployment(name, parameters=parameters, timeout=180, poll_interval=1)
    run = cast(FlowRun, run)
    assert run.state is not None and run.state.is_final(), run.state
    return run


def api_logs(flow_run_id: Any) -> list[tuple[int, str]]:
    """(level, message) of every log the run shipped to the API, once they stop arriving."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found: list[tuple[int, str]] = []
    with get_client(sync_client=True) as client:
        for _ in range(20):
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            now = [(log.level, log.message) for log in logs]
            if now and now == found:
                return found
            found = now
            time.sleep(0.5)
    return found


def runner_lines(log: Path, run_name: str) -> str:
    """What the operator's terminal showed for one run (its lines, and what follows them)."""
    text = log.read_text(errors="replace")
    start = text.find(run_name)
    assert start >= 0, f"nothing about {run_name} in the runner's output:\n{text[-3000:]}"
    return text[start:]


def test_a_served_sweep_with_a_down_monitor_logs_the_outage_not_a_crash(
    runner: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """
        monitors:
          - {name: shop, url: "http://127.0.0.1:9/health", timeout: 1s, failure_threshold: 1}
        """,
    )
    run = served_run("uptime-sweep/findings-sweep", config_path=str(config))

    assert run.state.is_failed() and run.state.name == "Outage", run.state
    logs = api_logs(run.id)
    text = "\n".join(message for _, message in logs)
    for word in CRASH_WORDS:
        assert word not in text, text
    assert any(level >= 40 and message.startswith("Outage: ") for level, message in logs), text
    terminal = runner_lines(runner, run.name)
    for word in CRASH_WORDS:
        assert word not in terminal, terminal


def test_a_task_that_raises_a_finding_logs_one_line_without_a_traceback(runner: Path) -> None:
    run = served_run("finding-flow/findings")

    assert run.state.is_failed() and run.state.name == "VaultMissing", run.state
    logs = api_logs(run.id)
    text = "\n".join(message for _, message in logs)
    for word in CRASH_WORDS:
        assert word not in text, text
    assert "the vault at s3://bucket/vault is missing (expected 1 object, found 0)" in text
    assert any(m.startswith("VaultMissing: the vault") for level, m in logs if level >= 40), text
    assert "Retry 1/1" in text, "the retry is still told"


def test_a_bug_keeps_its_traceback(runner: Path) -> None:
    run = served_run("bug-flow/bug")

    assert run.state.is_failed(), run.state
    text = "\n".join(message for _, message in api_logs(run.id))
    assert "Traceback" in text and "ZeroDivisionError" in text, text


def test_a_served_sweeps_logs_tell_what_changed_and_who_was_told(
    runner: Path, tmp_path: Path, http_target: Any
) -> None:
    """The run's page alone says it: a new monitor counting failures, its change to DOWN
    and why, and the alert with the channel it went to; then its recovery."""
    from tests.fixtures.receivers import HttpReceiver, Reply

    hook = HttpReceiver(Reply(200, "ok"))
    try:
        url = http_target.set("/shop", status=503)
        config = write_config(
            tmp_path, f'monitors:\n  - {{name: shop, url: "{url}"}}\n', hook=hook.url_for("/h")
        )
        first = served_run("uptime-sweep/findings-sweep", config_path=str(config))
        second = served_run("uptime-sweep/findings-sweep", config_path=str(config))
        http_target.set("/shop", status=200)
        third = served_run("uptime-sweep/findings-sweep", config_path=str(config))
    finally:
        hook.close()

    assert first.state.is_completed() and "1 pending" in first.state.message, first.state
    told = [message for _, message in api_logs(first.id)]
    assert "shop: pending: 1 of 2 failures: [STATUS] == 200 (got 503)" in told or any(
        m.startswith("shop: pending: 1 of 2 failures: [STATUS]") and "503" in m for m in told
    ), told
    told = "\n".join(message for _, message in api_logs(second.id))
    assert "shop: UNKNOWN -> DOWN" in told and "503" in told, told
    assert "sent to hook (webhook)" in told, told
    assert [r.json().get("title") for r in hook.requests], "the alert arrived"
    told = "\n".join(message for _, message in api_logs(third.id))
    assert "shop: DOWN -> UP" in told and "sent to hook (webhook)" in told, told
    for word in CRASH_WORDS:
        assert word not in told, told
