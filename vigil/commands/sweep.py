"""`vigil sweep`: one uptime sweep now, as a real flow run (it shows in the Prefect UI)."""

from __future__ import annotations

import typer

from vigil.cliutil import (
    ConfigOption,
    JsonOption,
    config_for,
    config_param,
    out,
    print_json,
    run_flow,
)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)


def sweep_command(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Check every monitor once; exit 1 if any monitor is DOWN."""
    config_for(config)  # bad config is exit 2 before any flow run starts
    from flows.sweep import uptime_sweep

    ok, summary, message = run_flow(
        uptime_sweep, heartbeats=False, config_path=config_param(config)
    )
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        out.print(f"sweep: {message}", markup=False)
        for line in (summary or {}).get("transitions", []):
            out.print(f"  {line}", markup=False)
    if not ok:
        raise typer.Exit(1)
