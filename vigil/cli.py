"""The `vigil` command: every duty by hand, plus the config and notification tools.

Each duty's commands live in `vigil/commands/<duty>.py`; this module holds the app and the
commands about vigil itself (init, check-config, notify-test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cliutil import (
    ConfigOption,
    JsonOption,
    config_for,
    config_path,
    exit_now,
    fail,
    options,
    out,
    print_json,
)
from vigil.config import resolve_path

app = typer.Typer(
    name="vigil",
    help="Production-operations duties as Prefect flows: uptime, backups, restore tests, "
    "DR drills, deploy verification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(config: ConfigOption = None) -> None:
    options.config_path = config


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        "vigil.yaml"
    ),
) -> None:
    """Write a commented example config (never overwrites an existing file)."""
    from importlib.resources import files

    if path.exists():
        fail(f"{path} already exists; not overwriting it (remove it or choose another path)", 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(files("vigil").joinpath("example.yaml").read_text(encoding="utf-8"))
    out.print(f"wrote {path}; check it with `vigil check-config -c {path}`", markup=False)


@app.command("check-config")
def check_config_command(config: ConfigOption = None) -> None:
    """Validate the config; print every problem with its key path (exit 2) or a summary."""
    loaded = config_for(config)
    out.print(f"{resolve_path(config_path(config))}: ok — {loaded.summary()}", markup=False)


@app.command("notify-test")
def notify_test_command(
    channel: Annotated[str | None, typer.Argument(help="Only this channel.")] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send a test message to each channel (or one) and report what happened to each."""
    from tasks.notify import send_alert
    from vigil.alert import Alert
    from vigil.store import open_store

    loaded = config_for(config)
    names = [channel] if channel else sorted(loaded.channels)
    if channel and channel not in loaded.channels:
        fail(f"no channel named {channel!r}; channels: {', '.join(sorted(loaded.channels))}", 2)
    if not names:
        fail("no channels are configured (add some under `channels:`)", 1)
    alert = Alert(
        title="vigil test message",
        severity="low",
        duty="notify-test",
        subject="vigil",
        summary="If you can read this, vigil can reach this channel.",
        kind="test",
    )
    with open_store(loaded.store.url) as store:
        deliveries = send_alert(loaded, store, alert, channels=names)
    if json_output:
        print_json([d.__dict__ for d in deliveries])
    else:
        for d in deliveries:
            mark = "ok  " if d.status == "sent" else "FAIL"
            extra = f" — {d.error}" if d.error else ""
            out.print(
                f"{mark} {d.channel} ({d.channel_type}, {d.attempts} attempt(s)){extra}",
                markup=False,
            )
    if any(d.status != "sent" for d in deliveries):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    from vigil.logs import install

    install()
    try:
        app()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


def _register_duties() -> None:
    from vigil.commands import register_all

    register_all(app)  # also summarises the commands defined in this module


_register_duties()
