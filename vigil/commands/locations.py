"""`vigil locations`: where the uptime sweep probes from, and registering their deployments."""

from __future__ import annotations

import typer

from vigil.cliutil import ConfigOption, config_for, connect_prefect, fail, out
from vigil.config import LOCAL


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Where the uptime sweep probes from (`locations:` in the config).",
        no_args_is_help=True,
    )
    group.command("list")(list_command)
    group.command("deploy")(deploy_command)
    app.add_typer(group, name="locations")


def list_command(config: ConfigOption = None) -> None:
    """Show each location, its work pool and queue, and how many monitors it probes."""
    loaded = config_for(config)
    if not loaded.locations:
        out.print("no locations: every monitor is probed by the machine running the sweep")
        return
    for name, location in loaded.locations.items():
        count = sum(name in loaded.locations_of(m) for m in loaded.monitors)
        where = "the machine running the sweep" if name == LOCAL else f"pool {location.pool}"
        if location.queue:
            where += f", queue {location.queue}"
        noun = "monitor" if count == 1 else "monitors"
        out.print(f"{name}: {where}; {count} {noun}", markup=False)


def deploy_command(config: ConfigOption = None) -> None:
    """Register each location's deployment (uptime-sweep-shard/<location>) on its work pool.

    Run it once, and again when `locations:` changes; then start workers on each location's
    pool (`prefect worker start --pool <pool>`), with VIGIL_CHECKOUT and VIGIL_CONFIG set."""
    loaded = config_for(config)
    if not loaded.locations:
        fail("no locations under `locations:` in the config", 2)
    connect_prefect()
    from flows.sweep_locations import register_locations

    lines = register_locations(loaded)
    for line in lines:
        out.print(line, markup=False)
    if any("no work pool" in line for line in lines):
        raise typer.Exit(1)
