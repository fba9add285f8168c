"""The report's pictures: uptime per day, latency percentiles, backup size, restore time.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, so no global figure state
and no display needed), saved as SVG with text as paths, so the HTML that embeds them
fetches no font and no file. Each chart carries a text alternative that states what the
picture shows, for screen readers and for mail clients that hide images.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

# Colour-blind-safe (Okabe-Ito), each at least 3:1 against the white background.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00"]
MAX_LINES = 6
SIZE = (7.5, 3.0)


@dataclass(frozen=True)
class Chart:
    title: str
    alt: str
    svg: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode()


def uptime_chart(daily: pd.DataFrame) -> Chart | None:
    """Daily uptime of the monitors that lost the most time (at most six lines)."""
    measured = daily.dropna(subset=["uptime_pct"])
    if measured.empty:
        return None
    worst = measured.groupby("monitor")["uptime_pct"].min().nsmallest(MAX_LINES)
    fig, axes = _figure("Uptime per day (%)")
    for colour, name in zip(PALETTE, worst.index, strict=False):
        rows = measured[measured["monitor"] == name]
        axes.plot(_times(rows["day"]), rows["uptime_pct"], marker="o", color=colour, label=name)
    time_axis(axes, _times(measured["day"]))
    floor = min(float(worst.min()), 99.0)
    axes.set_ylim(floor - (100 - floor) * 0.05, 100 + (100 - floor) * 0.05)
    _legend(axes)
    lows = [
        f"{name} lowest {pct:.3f}% on {_day_of_min(measured, name)}"
        for name, pct in worst.items()
        if pct < 100
    ]
    alt = "Uptime per day. " + ("; ".join(lows) if lows else "Every monitor 100% every day.")
    return Chart("Uptime per day", alt, _svg(fig))


def latency_chart(daily: pd.DataFrame, monitor: str) -> Chart | None:
    """p50, p95 and p99 latency per day of one monitor."""
    rows = daily[daily["monitor"] == monitor]
    if rows.empty:
        return None
    fig, axes = _figure(f"{monitor}: latency per day (ms)")
    for colour, column in zip(PALETTE, ("p50", "p95", "p99"), strict=False):
        axes.plot(_times(rows["day"]), rows[column], marker="o", color=colour, label=column)
    time_axis(axes, _times(rows["day"]))
    axes.set_ylim(bottom=0)
    _legend(axes)
    alt = (
        f"Latency per day of {monitor}: p50 between {rows['p50'].min():.0f} and "
        f"{rows['p50'].max():.0f} ms, p99 up to {rows['p99'].max():.0f} ms."
    )
    return Chart(f"Latency of {monitor}", alt, _svg(fig))


def backup_size_chart(backups: pd.DataFrame) -> Chart | None:
    """Size of every stored backup, one line per database."""
    sized = backups.dropna(subset=["size_bytes"])
    if sized.empty:
        return None
    fig, axes = _figure("Backup size (MB)")
    parts = []
    for colour, (name, rows) in zip(PALETTE, sized.groupby("database"), strict=False):
        size_mb = rows["size_bytes"].astype(float) / 1e6
        axes.plot(_times(rows["created_at"]), size_mb, marker="o", color=colour, label=name)
        parts.append(f"{name} from {size_mb.iloc[0]:,.0f} to {size_mb.iloc[-1]:,.0f} MB")
    time_axis(axes, _times(sized["created_at"]))
    axes.set_ylim(bottom=0)
    _legend(axes)
    return Chart("Backup size", "Backup size: " + "; ".join(parts) + ".", _svg(fig))


def restore_chart(restores: pd.DataFrame, rto_s: float) -> Chart | None:
    """Restore-test durations per database against the RTO line."""
    timed = restores.dropna(subset=["duration_s"])
    if timed.empty:
        return None
    fig, axes = _figure("Restore test duration (minutes)")
    parts = []
    for colour, (name, rows) in zip(PALETTE, timed.groupby("database"), strict=False):
        took = rows["duration_s"].astype(float) / 60
        axes.plot(_times(rows["started_at"]), took, marker="o", color=colour, label=name)
        over = int((rows["duration_s"] > rto_s).sum())
        parts.append(f"{name}: {len(rows)} tests, longest {took.max():.0f} min, {over} over RTO")
    time_axis(axes, _times(timed["started_at"]))
    axes.axhline(rto_s / 60, color="#B00020", linestyle="--", label=f"RTO {rto_s / 60:.0f} min")
    axes.set_ylim(bottom=0)
    _legend(axes)
    alt = f"Restore test durations against an RTO of {rto_s / 60:.0f} minutes. " + "; ".join(parts)
    return Chart("Restore test duration", alt + ".", _svg(fig))


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=SIZE, dpi=96, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.add_subplot()
    axes.set_title(title, fontsize=10, loc="left")
    axes.grid(True, color="#d0d7de", linewidth=0.6)
    axes.tick_params(labelsize=8)
    axes.tick_params(axis="x", labelrotation=30)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return fig, axes


def _times(values: pd.Series) -> pd.Series:
    """Dates or timestamps as naive UTC datetimes, which matplotlib places on a date axis."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None)


def time_axis(axes: Axes, times: pd.Series) -> None:
    """A date axis that fits the data: a report of one day spans a few days around it, not
    matplotlib's four-year default for a single date, and the labels carry the year (in the
    axis offset when every tick shares it)."""
    first, last = times.min(), times.max()
    span = last - first
    pad = pd.Timedelta(days=1) if span < pd.Timedelta(days=2) else span * 0.03
    axes.set_xlim(date2num(first - pad), date2num(last + pad))
    locator = AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=True))


def _legend(axes: Axes) -> None:
    """Beside the plot, never over a line."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _svg(fig: Figure) -> bytes:
    """Deterministic SVG (no date, fixed id salt): the same data gives the same bytes."""
    buffer = io.BytesIO()
    with rc_context({"svg.hashsalt": "vigil", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _day_of_min(frame: pd.DataFrame, monitor: str) -> str:
    rows = frame[frame["monitor"] == monitor]
    return str(rows.loc[rows["uptime_pct"].idxmin(), "day"])
