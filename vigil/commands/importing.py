"""`vigil import gatus GATUS.yaml`: bring another tool's config over (the conversion is core,
vigil/gatus.py; this module reads the file, checks the result loads, and writes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from vigil.cliutil import err, fail, out

import_app = typer.Typer(
    help="Convert another monitoring tool's config into a vigil config.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    import_app.command("gatus")(gatus_command)
    app.add_typer(import_app, name="import")


def gatus_command(
    source: Annotated[Path, typer.Argument(help="The Gatus config (config.yaml).")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write the vigil config here (default: stdout)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --output.")] = False,
) -> None:
    """Convert a Gatus config: endpoints, intervals, conditions, alert thresholds,
    maintenance, Slack/email/custom alerting; list what could not be carried over.

    The result is checked the way `vigil check-config` checks it before it is written."""
    from vigil.config import ConfigError, Monitor, parse_config
    from vigil.gatus import GatusError, convert

    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}", 2)
    except yaml.YAMLError as exc:
        fail(f"{source} is not YAML: {str(exc).splitlines()[0]}", 2)
    try:
        conversion = convert(document, per_monitor_interval="interval" in Monitor.model_fields)
    except GatusError as exc:
        fail(f"{source}: {exc}", 2)
    text = conversion.to_yaml(source.name)
    unset: list[str] = []
    try:
        parse_config(text)
    except ConfigError as exc:
        unset = [e for e in exc.errors if "environment variable" in e]
        if len(unset) != len(exc.errors):  # the converter wrote something vigil refuses
            fail("the converted config does not load: " + "; ".join(exc.errors), 1)
    if output is None:
        typer.echo(text, nl=False)
    else:
        if output.exists() and not force:
            fail(f"{output} already exists; not overwriting it (use --force)", 2)
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}; check it with `vigil check-config -c {output}`", markup=False)
    _summary(conversion.config, conversion.not_carried, unset)


def _summary(config: dict[str, object], not_carried: list[str], unset: list[str]) -> None:
    monitors = config.get("monitors") or []
    channels = config.get("channels") or {}
    err.print(
        f"converted {len(monitors)} monitors and {len(channels)} channels",  # type: ignore[arg-type]
        markup=False,
    )
    if not_carried:
        err.print(f"not carried over ({len(not_carried)}):", markup=False)
        for line in not_carried:
            err.print(f"  - {line}", markup=False)
    for line in unset:
        err.print(f"set before running vigil: {line}", markup=False)
