"""The HTML report as an operator opens it, on the first day and after 90 days: rendered in
headless Chromium, saved as screenshots under `test-artifacts/screens/` (look at them), and
its date axes checked: a one-day report spans days, not years, and says which year."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import num2date
from matplotlib.figure import Figure

from tests.browser import dump_dom, needs_chromium, screenshot
from tests.history import END, Scenario, seeded_store
from vigil.charts import time_axis
from vigil.report import build_report
from vigil.report_render import to_html

ROOT = Path(__file__).resolve().parents[1]
SCREENS = ROOT / "test-artifacts" / "screens"


def axis_for(times: list[pd.Timestamp]) -> tuple[float, str, str]:
    """(span in days, the offset text, the first tick label) of a date axis over `times`."""
    figure = Figure()
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    series = pd.Series(times)
    axes.plot(series, range(len(series)), marker="o")
    time_axis(axes, series)
    canvas.draw()
    low, high = (num2date(x) for x in axes.get_xlim())
    labels = [t.get_text() for t in axes.get_xticklabels() if t.get_text()]
    return (
        (high - low).total_seconds() / 86400,
        axes.xaxis.get_major_formatter().get_offset(),
        labels[0],
    )


def test_one_day_spans_days_and_names_its_year() -> None:
    span, offset, _ = axis_for([pd.Timestamp("2026-12-07")])
    assert 1 <= span <= 3, span
    assert "2026" in offset, offset


def test_ninety_days_span_ninety_days_with_the_year() -> None:
    days = [pd.Timestamp("2026-09-08") + timedelta(days=i) for i in range(90)]
    span, offset, first = axis_for(days)
    assert 89 <= span <= 96, span
    assert "2026" in offset + first, (offset, first)


@needs_chromium
@pytest.mark.parametrize("days", [1, 90])
def test_the_report_reads_well_on_day_one_and_after_ninety_days(tmp_path: Path, days: int) -> None:
    scenario = Scenario(END, days)
    with seeded_store(scenario, "sqlite", tmp_path, None) as seeded:
        report = build_report(scenario.config(), seeded.store, END, days=days)
    page = tmp_path / "report.html"
    page.write_text(to_html(report))
    SCREENS.mkdir(parents=True, exist_ok=True)
    shot = screenshot(page, SCREENS / f"report-{days}-days.png", size=(1200, 2400))
    assert shot.stat().st_size > 10_000
    text = dump_dom(page).text
    assert "Traceback" not in text and "nan" not in text.split()
    assert "Uptime per day" in text
