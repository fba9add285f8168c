"""`vigil report` from the command line, and its HTML rendered in a real headless Chromium:
tables, charts with text alternatives, and nothing fetched from anywhere."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.browser import dump_dom, needs_chromium, screenshot
from tests.history import END, STANDARD, Seeded, recent, seeded_store
from vigil.cli import app
from vigil.report import build_report
from vigil.report_render import to_html


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_store(STANDARD, "sqlite", tmp_path_factory.mktemp("html"), None) as s:
        yield s


@pytest.fixture(scope="module")
def html_report(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html-out") / "report.html"
    out.write_text(to_html(build_report(STANDARD.config(), seeded.store, END, days=30)))
    return out


@pytest.fixture(scope="module")
def last_week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Six days of history ending now, for the command, which reads the clock."""
    scenario = recent(history_days=6)
    with seeded_store(scenario, "sqlite", tmp_path_factory.mktemp("cli"), None) as s:
        yield s


def test_report_exits_1_when_an_slo_was_missed(last_week: Seeded, tmp_path: Path) -> None:
    """Over 5 days api lost the 30 minutes past its own window's end: more than the
    7-minute budget of 99.9%."""
    config = last_week.scenario.write_config(tmp_path, last_week.url)
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--days", "5", "--json", "--html", str(out)]
    )
    assert result.exit_code == 1, result.output
    api = next(m for m in json.loads(result.stdout)["monitors"] if m["name"] == "api")
    assert (api["incidents"], api["downtime_minutes"], api["mttr_minutes"]) == (1, 30, 50)
    assert api["slo"]["met"] is False
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_exits_0_when_every_slo_is_met(last_week: Seeded, tmp_path: Path) -> None:
    """The last day was clean for api, so its 99.9% holds over one day."""
    config = last_week.scenario.write_config(tmp_path, last_week.url)
    result = CliRunner().invoke(app, ["report", "-c", str(config), "--days", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^api\s+100\.000%", result.output, re.MULTILINE)


def test_the_html_is_self_contained(html_report: Path) -> None:
    markup = html_report.read_text()
    assert "<script" not in markup and "<link" not in markup and "@import" not in markup
    assert not re.search(r"""(src|href)=["']?https?:|url\(\s*["']?https?:""", markup)
    for uri in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', markup):
        svg = base64.b64decode(uri).decode()
        assert "<svg" in svg and 'xlink:href="http' not in svg and "<image" not in svg


@needs_chromium
def test_the_html_report_renders_with_tables_and_described_charts(html_report: Path) -> None:
    dom = dump_dom(html_report)
    assert dom.find("main") and dom.find("header") and dom.find("footer")
    table = next(t for t in dom.find_all("table") if "per monitor" in t.find("caption").text)
    rows = [r.find("th").text for r in table.find("tbody").find_all("tr")]
    assert rows[:2] == ["api", "web"]  # worst uptime first
    assert "bad" in table.find("tbody").find("tr").attrs["class"]  # the missed SLO stands out
    images = dom.find_all("img")
    assert len(images) == 5  # uptime, latency of the two slowest, backup size, restore time
    for image in images:
        assert image.attrs["src"].startswith("data:image/svg+xml;base64,")
        assert len(image.attrs["alt"]) > 20
    alts = " ".join(i.attrs["alt"] for i in images)
    assert "api lowest" in alts and "1 over RTO" in alts
    titles = [h.text for h in dom.find_all("h2")]
    assert titles == [
        "Monitors",
        "Charts",
        "Backups",
        "Restore tests",
        "DR drills",
        "Deploys",
        "Incidents",
    ]


@needs_chromium
def test_the_html_report_is_readable_on_a_phone(html_report: Path, tmp_path: Path) -> None:
    shot = screenshot(html_report, tmp_path / "report-phone.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
