"""The public status page: rendered in headless Chromium, it shows the states, 90 daily bars,
incidents and maintenance of the generated history; it leaks nothing private, keeps WCAG
contrast, reads on a phone, and can be uploaded to S3."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.statuspage import publish
from tests.browser import Node, dump_dom, needs_chromium, parse, screenshot
from tests.history import END, STANDARD, Seeded, seeded_store
from vigil import statuspage
from vigil.cli import app


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_store(STANDARD, "sqlite", tmp_path_factory.mktemp("page"), None) as s:
        yield s


@pytest.fixture(scope="module")
def site(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    page = statuspage.build(STANDARD.config(), seeded.store, END)
    statuspage.write(page, out)
    return out


@pytest.fixture(scope="module")
def dom(site: Path) -> Node:
    return dump_dom(site / "index.html")


def label(item: Node) -> str:
    """A service's heading: h3 on its own, h4 inside a group."""
    return (item.find_all("h3") or item.find_all("h4"))[0].text


def bars(item: Node) -> dict[date, str]:
    return {
        date.fromisoformat(r.attrs["data-day"]): r.attrs["data-level"]
        for r in item.find_all("rect")
    }


@needs_chromium
def test_the_page_shows_the_current_states(dom: Node) -> None:
    assert dom.find("p", id="overall").text == "Partial outage"  # web is DOWN, the rest up
    badges = {
        label(li): li.find("span", cls="badge").text for li in dom.find_all("li", cls="service")
    }
    assert badges == {"Public API": "Operational", "Web app": "Outage", "Search": "Operational"}
    group = dom.find("li", cls="group")
    assert group.find("h3").text == "Website"
    assert group.find("span", cls="badge").text == "Outage"  # its worst member's state


@needs_chromium
def test_each_service_has_90_daily_bars_with_the_days_that_went_wrong(dom: Node) -> None:
    api = next(li for li in dom.find_all("li", cls="service") if label(li) == "Public API")
    days = bars(api)
    assert len(days) == 90 and max(days) == date(2026, 3, 1)
    assert days[date(2026, 2, 24)] == "down"  # 20 minutes DOWN
    assert days[date(2026, 2, 17)] == "degraded"
    assert days[date(2026, 2, 21)] == "ok"  # its outage fell inside maintenance
    down = [day for day, level in days.items() if level == "down"]
    assert down == [date(2026, 1, 30), date(2026, 2, 9), date(2026, 2, 24), date(2026, 2, 26)]
    summary = api.find("title").text
    assert summary.startswith("Uptime over the last 90 days: 99.")
    assert "2026-02-24: 98.611% uptime, 20m down" in summary
    assert api.find("svg").attrs["role"] == "img"


@needs_chromium
def test_recent_incidents_are_listed_with_their_durations(dom: Node) -> None:
    items = [li.text for li in dom.find("ol", cls="incidents").find_all("li")]
    assert items == [
        "Web app: Outage Ongoing for 20m, since 2026-03-01 11:40 UTC",
        "Search: Degraded performance 2026-02-27 09:00 UTC, lasted 3h",
        "Public API: Outage 2026-02-26 00:40 UTC, lasted 50m",
        "Public API: Outage 2026-02-24 03:10 UTC, lasted 20m",
        "Public API: Degraded performance 2026-02-17 14:00 UTC, lasted 2h",
    ]


@needs_chromium
def test_announced_maintenance_is_listed(dom: Node) -> None:
    items = [li.text for li in dom.find("ul", cls="maintenance").find_all("li")]
    assert items[0] == (
        "Database upgrade 2026-03-03 22:00 UTC – 2026-03-03 23:00 UTC Affects Web app"
    )
    assert [i.split(" 20")[0] for i in items] == [
        "Database upgrade",
        "Weekly patching",
        "Weekly patching",
    ]


@needs_chromium
def test_the_page_has_landmarks_and_a_phone_viewport(dom: Node, site: Path, tmp_path: Path) -> None:
    assert dom.find("html").attrs["lang"] == "en"
    assert dom.find("meta", name="viewport")
    assert dom.find("header") and dom.find("main") and dom.find("footer")
    assert [h.text for h in dom.find_all("h2")] == [
        "Overall status",
        "Services",
        "Scheduled maintenance",
        "Recent incidents",
    ]
    shot = screenshot(site / "index.html", tmp_path / "status-phone.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_private_leaks(site: Path) -> None:
    """No URL, host, error text or internal monitor name; the private monitor is absent."""
    files = {name: (site / name).read_text() for name in statuspage.FILES}
    for text in files.values():
        assert "internal.example" not in text and "http://" not in text
        assert "[STATUS]" not in text and "refused" not in text
        assert "<script" not in text.lower()
    visible = parse(files["index.html"]).find("body").text
    for name in ("api", "web", "db"):
        assert not re.search(rf"\b{name}\b", visible), name
    document = json.loads(files["status.json"])
    assert [s["name"] for s in document["services"]] == ["Public API", "Web app", "Search"]
    assert all(i["cause"] is None for i in document["incidents"])


def test_errors_show_only_when_the_config_allows(seeded: Seeded) -> None:
    settings = statuspage.Settings(show_errors=True)
    page = statuspage.build(STANDARD.config(), seeded.store, END, settings)
    causes = {i.cause for i in page.incidents}
    assert causes == {"[STATUS] 503, expected == 200", '[BODY].status "degraded", expected == ok'}


def test_colours_keep_wcag_contrast() -> None:
    white = "#ffffff"
    for key in ("text", "muted"):
        assert contrast(statuspage.COLOURS[key], white) >= 4.5, key
    for key in ("ok", "degraded", "down", "maintenance", "none"):
        # Badges carry white text on the colour (4.5:1); bars sit on white (3:1).
        assert contrast(statuspage.COLOURS[key], white) >= 4.5, key


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_command_writes_the_site_and_uploads_it(
    seeded: Seeded, tmp_path: Path, s3_server, s3_bucket: str
) -> None:
    extra = f"backup:\n  s3: {{endpoint_url: '{s3_server.url}', region: us-east-1}}\n"
    config = STANDARD.write_config(tmp_path, seeded.url, extra=extra)
    target = f"s3://{s3_bucket}/status"
    out = tmp_path / "site"
    result = CliRunner().invoke(
        app, ["status-page", "-c", str(config), "--out", str(out), "--upload", target]
    )
    assert result.exit_code == 0, result.output
    assert "status: Partial outage" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "status.json"]  # no temp left
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key="status/index.html")
    assert stored["ContentType"] == "text/html; charset=utf-8"
    assert stored["Body"].read() == (out / "index.html").read_bytes()


def test_the_command_refuses_a_config_with_nothing_public(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'v.db'}'}}\n"
        "monitors: [{name: api, url: 'http://127.0.0.1:9/'}]\n"
    )
    result = CliRunner().invoke(app, ["status-page", "-c", str(config), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "public: true" in result.output


def test_after_a_sweep_the_page_is_published_where_the_config_says(
    seeded: Seeded, tmp_path: Path, s3_server, s3_bucket: str
) -> None:
    extra = f"backup:\n  s3: {{endpoint_url: '{s3_server.url}', region: us-east-1}}\n"
    config = STANDARD.config(extra=extra)
    assert publish(config, seeded.store, END, statuspage.Settings()) == []
    uploaded = publish(config, seeded.store, END, statuspage.Settings(upload=f"s3://{s3_bucket}"))
    assert uploaded[-2:] == ["index.html", "status.json"]
    body = s3_server.client().get_object(Bucket=s3_bucket, Key="status.json")["Body"].read()
    assert json.loads(body)["description"] == "Partial outage"
    written = publish(config, seeded.store, END, statuspage.Settings(out=str(tmp_path / "www")))
    assert written == [str(tmp_path / "www" / name) for name in statuspage.FILES]


def test_the_command_writes_where_the_config_says_without_out(
    seeded: Seeded, tmp_path: Path
) -> None:
    site = tmp_path / "from-config"
    config = STANDARD.write_config(tmp_path, seeded.url, extra=f"status_page: {{out: '{site}'}}\n")
    result = CliRunner().invoke(app, ["status-page", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in site.iterdir()) == ["index.html", "status.json"]


def test_the_command_without_any_destination_says_how_to_give_one(
    seeded: Seeded, tmp_path: Path
) -> None:
    config = STANDARD.write_config(tmp_path, seeded.url)
    result = CliRunner().invoke(app, ["status-page", "-c", str(config)])
    assert result.exit_code == 2
    assert "--out DIR or --upload s3://..., or status_page.out" in result.output


@pytest.mark.parametrize("show_errors", [True, False])
def test_the_page_renders_during_down_and_degraded_incidents(
    tmp_path: Path, show_errors: bool
) -> None:
    """Ongoing DEGRADED and DOWN incidents on public monitors, one of them without a recorded
    cause (a degraded health body has none), causes shown or not: the page renders (a page
    that fails to render goes stale exactly when it is needed)."""
    from datetime import timedelta

    from vigil.store import Incident

    with seeded_store(STANDARD, "sqlite", tmp_path, None) as own:
        with own.store.session() as session:
            for monitor, state in (("search", "DEGRADED"), ("web", "DOWN")):
                session.add(
                    Incident(
                        monitor=monitor,
                        state=state,
                        started_at=END - timedelta(hours=1),
                        severity="high",
                        cause=None,
                    )
                )
        settings = statuspage.Settings(show_errors=show_errors)
        page = statuspage.build(STANDARD.config(), own.store, END, settings)
        assert {i.state for i in page.incidents} >= {"DOWN", "DEGRADED"}
        written = statuspage.write(page, tmp_path / "site")
    text = (tmp_path / "site" / "index.html").read_text()
    assert len(written) == 2 and "Recent incidents" in text
    assert ("[STATUS] 503, expected == 200" in text) is show_errors
    assert "nan" not in text.lower().split()
