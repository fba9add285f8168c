"""`vigil report`, `vigil status`, `vigil status-page`, `vigil metrics`: what the records
say, for people (report, status), the public (status page) and machines (metrics).

None of them runs a flow or talks to the Prefect server (except `report --send`, which runs
the `weekly-report` duty): they only read the store, so they answer fast and work while the
server is down. Each command imports what it needs when it
runs, so `vigil status` never loads pandas, matplotlib or Prefect.

Exit codes: `report` 1 when an SLO was missed; `status` 1 when anything needs attention;
`status-page` 2 when no monitor is public, 1 when the upload failed; `metrics` 1 when the
push failed.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from vigil import clock
from vigil.cliutil import ConfigOption, JsonOption, config_for, fail, out, print_json


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
    app.command("status")(status_command)
    app.command("status-page")(status_page_command)
    app.command("metrics")(metrics_command)


def report_command(
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="Days back from now (30; with --send, report.days)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as one HTML file.")
    ] = None,
    send: Annotated[
        bool,
        typer.Option(
            "--send",
            help="Run the `weekly-report` duty now instead: publish the artifact and send the "
            "summary to the report's channels (needs Prefect, like every duty).",
        ),
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Uptime, SLOs, backups, restore tests, drills and deploys; exit 1 if an SLO was missed."""
    if send:
        _send_report(config, days, json_output)
        return
    from vigil.report import build_report
    from vigil.report_render import to_html, to_text
    from vigil.store import open_store

    loaded = config_for(config)
    with open_store(loaded.store.url) as store:
        report = build_report(loaded, store, clock.now(), days or 30)
    if html is not None:
        _write_text(html, to_html(report))
    if json_output:
        print_json(report.as_dict())
    else:
        for line in to_text(report):
            out.print(line, markup=False)
        if html is not None:
            out.print(f"\nwrote {html}", markup=False)
    if report.slo_missed:
        raise typer.Exit(1)


def _send_report(config: Path | None, days: int | None, json_output: bool) -> None:
    """The scheduled duty, by hand: the same flow, so the run and its artifact are in the UI."""
    from flows.report import weekly_report
    from vigil.cliutil import config_param, run_flow

    config_for(config)
    ok, summary, message = run_flow(weekly_report, config_path=config_param(config), days=days)
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        out.print(message, markup=False)
    if not ok:
        raise typer.Exit(1)


def status_command(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Every monitor, backup, restore test, drill and deploy; exit 1 if anything needs you."""
    from vigil.status import gather, prefect_database, prefect_lines, render, ui_base_url
    from vigil.store import open_store

    loaded = config_for(config)
    with open_store(loaded.store.url) as store:
        screen = gather(loaded, store, clock.now(), ui_base_url())
    prefect = prefect_database(loaded)  # warnings only: they do not change the exit code
    if json_output:
        print_json({**screen.as_dict(), "prefect": prefect.as_dict() if prefect else None})
    else:
        for line in render(screen) + prefect_lines(prefect):
            out.print(line, markup=False)
    if screen.needs_attention:
        raise typer.Exit(1)


def status_page_command(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write the site into (default: status_page.out)."),
    ] = None,
    upload: Annotated[
        str | None,
        typer.Option("--upload", help="Also copy it to s3://bucket/prefix (overrides config)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the public status page (index.html, status.json) for the public monitors."""
    from vigil import statuspage

    loaded = config_for(config)
    if not any(m.public for m in loaded.monitors):
        fail("no monitor is public: mark the ones to show with `public: true`", 2)
    settings = statuspage.Settings.of(loaded)
    target = upload or settings.upload
    chosen = out_dir or (Path(settings.out).expanduser() if settings.out else None)
    if chosen is None and not target:
        fail("say where the page goes: --out DIR or --upload s3://..., or status_page.out", 2)
    with contextlib.ExitStack() as stack:
        folder = chosen or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        page = _write_page(loaded, folder)
        if target:
            _upload_page(loaded, folder, target)
    out.print(f"status: {page.overall_text}", markup=False)


def _write_page(loaded: Any, folder: Path) -> Any:
    from vigil import statuspage
    from vigil.store import open_store

    with open_store(loaded.store.url) as store:
        page = statuspage.build(loaded, store, clock.now())
    for path in statuspage.write(page, folder):
        out.print(f"wrote {path}", markup=False)
    return page


def _upload_page(loaded: Any, out_dir: Path, target: str) -> None:
    from tasks.statuspage import upload as upload_page
    from tasks.storage import StorageError

    try:
        keys = upload_page(out_dir, target, loaded)
    except (StorageError, ValueError) as exc:
        fail(f"status page upload to {target} failed: {exc}", 1)
    out.print(f"uploaded {', '.join(keys)} to {target}", markup=False)


def metrics_command(
    textfile: Annotated[
        Path | None,
        typer.Option("--textfile", help="Write here for node_exporter (name it *.prom)."),
    ] = None,
    push: Annotated[
        str | None, typer.Option("--push", help="Push to this Pushgateway URL.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Prometheus gauges for node_exporter or a Pushgateway (printed without either)."""
    from vigil import metrics
    from vigil.status import gather
    from vigil.store import open_store

    loaded = config_for(config)
    with open_store(loaded.store.url) as store:
        registry = metrics.registry_for(gather(loaded, store, clock.now()))
    if textfile is None and push is None:
        sys.stdout.write(metrics.text(registry))
        return
    if textfile is not None:
        metrics.write_textfile(registry, textfile)
        out.print(f"wrote {textfile}", markup=False)
    if push is not None:
        try:
            metrics.push(registry, push)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            fail(f"push to {push} failed: {exc}", 1)
        out.print(f"pushed to {push}", markup=False)


def _write_text(path: Path, text: str) -> None:
    """Write beside, then rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
