"""What an operator sees in the Prefect UI, in headless Chromium: the runs list and the page
of a served sweep that found an outage, logs included. The pages are saved as screenshots
under `test-artifacts/screens/` (look at them), and checked for what must be there (the
finding, in one line) and what must not (a traceback, "unexpected exception")."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser import needs_chromium, render
from tests.fixtures.prefect_server import PrefectServer, spawn, stop, wait_for

pytestmark = [pytest.mark.slow, needs_chromium]

ROOT = Path(__file__).resolve().parents[1]
SCREENS = ROOT / "test-artifacts" / "screens"
VIGIL = str(Path(sys.executable).with_name("vigil"))
CRASH_WORDS = ("Traceback", "unexpected exception", "cannot be resolved into an exception")


@pytest.fixture(scope="module")
def outage_run(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`vigil serve` of a config whose one monitor is down; one sweep run through its
    deployment, as the schedule would; the run once it is final."""
    root = tmp_path_factory.mktemp("screens")
    config = root / "vigil.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{root / 'vigil.db'}"},
                "sweep": {"every": "1h"},
                "monitors": [
                    {"name": "shop", "url": "http://127.0.0.1:9/", "failure_threshold": 1}
                ],
            }
        )
    )
    env = prefect_server.client_env(root / "home")
    log = root / "serve.log"
    served = spawn([VIGIL, "serve", "-c", str(config)], env, log, cwd=root)
    try:
        with prefect_server.client() as client:
            deployment = wait_for(
                lambda: _deployment(client), 120, "vigil serve to register uptime-sweep", log
            )
            run = client.create_flow_run_from_deployment(deployment.id)
            yield wait_for(lambda: _final(client, run.id), 180, "the served sweep to end", log)
    finally:
        stop(served)


def _deployment(client: Any) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name("uptime-sweep/uptime-sweep")
    except ObjectNotFound:
        return None


def _final(client: Any, run_id: Any) -> Any:
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


def page_text(dom: Any) -> str:
    return str(dom.text)


def test_the_run_page_of_a_served_outage_tells_the_finding_without_a_traceback(
    prefect_server: PrefectServer, outage_run: Any
) -> None:
    assert outage_run.state.name == "Outage", outage_run.state
    time.sleep(2)  # logs reach the API in batches
    dom = render(
        f"{prefect_server.url}/runs/flow-run/{outage_run.id}",
        ready='document.body.innerText.includes("Outage: 1 down")',
        screenshot_to=SCREENS / "failed-sweep-run.png",
    )
    text = page_text(dom)
    assert "Outage: 1 down (shop down)" in text
    for word in CRASH_WORDS:
        assert word not in text, f"{word!r} on the run's page"


def test_the_runs_list_shows_the_outage_by_name(
    prefect_server: PrefectServer, outage_run: Any
) -> None:
    dom = render(
        f"{prefect_server.url}/runs",
        ready=f'document.querySelector("a[href$=\\"/flow-run/{outage_run.id}\\"]")',
        screenshot_to=SCREENS / "runs-list.png",
    )
    anchor = next(
        a
        for a in dom.find_all("a")
        if a.attrs.get("href", "").endswith(f"/flow-run/{outage_run.id}")
    )
    assert anchor.text == outage_run.name and anchor.text.startswith("sweep ")
    assert "Outage" in page_text(dom)


@pytest.fixture(autouse=True)
def _screens_folder() -> Iterator[None]:
    SCREENS.mkdir(parents=True, exist_ok=True)
    yield
