"""The `vigil` command: every duty by hand, plus the config and notification tools.

Exit codes are a contract scripts rely on: 0 the duty ran and all is well; 1 the duty ran
and found a problem (or could not do its work); 2 bad usage or bad config. Listing
commands take `--json` and print exactly one JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from vigil.config import Config, ConfigError, load_config, resolve_path
from vigil.redact import redact

app = typer.Typer(
    name="vigil",
    help="Production-operations duties as Prefect flows: uptime, backups, restore tests, "
    "DR drills, deploy verification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("-c", "--config", help="Config file (default: $VIGIL_CONFIG, else ./vigil.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]


class State:
    """Options given before the command (`vigil -c x.yaml sweep`)."""

    config_path: Path | None = None


_state = State()


@app.callback()
def _main(config: ConfigOption = None) -> None:
    _state.config_path = config


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(redact(message), markup=False)
    raise typer.Exit(code)


def config_for(path: Path | None) -> Config:
    """Load the config named on the command line; bad config is exit code 2."""
    try:
        return load_config(path or _state.config_path)
    except ConfigError as exc:
        _print_config_errors(exc)
        raise typer.Exit(2) from None


def print_json(document: Any) -> None:
    sys.stdout.write(redact(json.dumps(document, indent=2, default=str)) + "\n")


def _print_config_errors(exc: ConfigError) -> None:
    where = f" in {exc.path}" if exc.path else ""
    err.print(f"{len(exc.errors)} problem(s){where}:", markup=False)
    for line in exc.errors:
        err.print(f"  {line}", markup=False)


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
    out.print(
        f"{resolve_path(config or _state.config_path)}: ok — {loaded.summary()}", markup=False
    )


@app.command("notify-test")
def notify_test_command(
    channel: Annotated[str | None, typer.Argument(help="Only this channel.")] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send a test message to each channel (or one) and report what happened to each."""
    from vigil.notify import Alert, dispatch
    from vigil.records import open_records

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
    with open_records(loaded) as records:
        deliveries = dispatch(alert, loaded, record=records.record_delivery, channels=names)
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
    from vigil.redact import install_log_redaction

    install_log_redaction()
    app()
