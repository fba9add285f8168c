"""The Prefect UI's runs page, in headless Chromium, lists vigil's runs by their readable
names, each with its state on its own row: what an operator sees on opening the dashboard.

Both UIs the server ships are checked: `/runs` (the one the README's links open) and
`/v2/runs` (where the dashboard's front page sends a new browser).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser import Node, needs_chromium, render
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.targets import HttpTarget

pytestmark = [pytest.mark.slow, needs_chromium]

VIGIL = str(Path(sys.executable).with_name("vigil"))
RUN_NAME = r"sweep \d{4}-\d\d-\d\d \d\d:\d\d"


@pytest.fixture(scope="module")
def service() -> Iterator[HttpTarget]:
    target = HttpTarget()
    target.set("/ok")
    target.set("/degraded", body={"status": "degraded"})
    yield target
    target.close()


def sweep(server: PrefectServer, root: Path, service: HttpTarget, path: str) -> Any:
    """`vigil sweep` of one monitor answering at `path`; its flow run as the API has it."""
    root.mkdir()
    config = root / "vigil.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{root / 'vigil.db'}"},
                "monitors": [{"name": "api", "url": service.url(path)}],
            }
        )
    )
    result = subprocess.run(
        [VIGIL, "sweep", "-c", str(config)],
        cwd=root,
        env=server.client_env(root / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with server.client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["uptime-sweep"]))
        )
    ours = [r for r in runs if r.parameters.get("config_path") == str(config.resolve())]
    assert len(ours) == 1, [r.name for r in runs]
    return ours[0]


@pytest.fixture(scope="module")
def runs(
    prefect_server: PrefectServer, service: HttpTarget, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Two sweeps on the server: one where all is well, one where the monitor is degraded."""
    root = tmp_path_factory.mktemp("ui")
    return {
        state: sweep(prefect_server, root / state.lower(), service, path)
        for state, path in (("Completed", "/ok"), ("Degraded", "/degraded"))
    }


@pytest.mark.parametrize("page", ["/runs", "/v2/runs"])
def test_runs_page_lists_each_sweep_by_name_with_its_state(
    prefect_server: PrefectServer, runs: dict[str, Any], page: str
) -> None:
    links = [f"a[href$='/flow-run/{run.id}']" for run in runs.values()]
    ready = " && ".join(f'document.querySelector("{link}")' for link in links)
    dom = render(prefect_server.url + page, ready=ready)

    for state, run in runs.items():
        anchor = next(
            a for a in dom.find_all("a") if a.attrs.get("href", "").endswith(f"/flow-run/{run.id}")
        )
        assert anchor.text == run.name
        assert re.fullmatch(RUN_NAME, anchor.text)
        row = row_of(dom, anchor)
        other = ({"Completed", "Degraded"} - {state}).pop()
        assert state in row.text and other not in row.text, row.text


def row_of(dom: Node, anchor: Node) -> Node:
    """The run's row: the largest part of the page holding its link and no other run's."""
    holders = [n for n in dom.walk() if any(d is anchor for d in n.walk())]
    alone = [
        n
        for n in holders
        if sum("/flow-run/" in a.attrs.get("href", "") for a in n.find_all("a")) == 1
    ]
    return max(alone, key=lambda n: len(n.text))
