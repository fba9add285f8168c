"""`vigil drill`: the monthly disaster-recovery drill by hand, run as the `dr-drill` flow so
its run, report artifact and notification are the same as the scheduled one's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cliutil import (
    ConfigOption,
    JsonOption,
    config_for,
    config_param,
    fail,
    out,
    print_json,
    run_flow,
)


def register(app: typer.Typer) -> None:
    app.command("drill")(drill_command)


def drill_command(
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the after-action report (markdown) here."),
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rehearse a disaster: recover every database from the offsite copy, check fallbacks
    and the app, run the runbook steps, tear down, and judge RTO and RPO. Exit 1 unless the
    drill passed."""
    loaded = config_for(config)
    if not loaded.databases:
        fail("no databases to recover: add them under `databases:` in the config", 2)
    if report is not None and report.is_dir():
        fail(f"--report {report} is a folder; name a file", 2)
    from flows.drill import dr_drill

    ok, summary, message = run_flow(dr_drill, config_path=config_param(config))
    if report is not None and summary and summary.get("report"):
        report.write_text(summary["report"], encoding="utf-8")
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        out.print((summary or {}).get("headline") or message, markup=False)
        for item in (summary or {}).get("action_items") or []:
            out.print(f"  - {item}", markup=False)
        if report is not None and summary:
            out.print(f"report written to {report}", markup=False)
    if not ok or (summary or {}).get("status") != "passed":
        raise typer.Exit(1)
