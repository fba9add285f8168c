"""`vigil up`: the whole thing on one machine, for a new user (the README's main command).

Uses the config it is given (or `./vigil.yaml`), else writes the example config under
$VIGIL_HOME; starts a local Prefect server (UI on 127.0.0.1:4200) unless one is configured
or already running, the demo service and a terminal inbox for alerts; runs one sweep at
once; then serves every duty on its schedule. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import typer

from vigil.cliutil import ConfigOption, config_for, config_path, connect_prefect, err, out
from vigil.config import resolve_path


def register(app: typer.Typer) -> None:
    app.command("up")(up_command)
    app.command("serve")(serve_command)
    app.command("demo")(demo_command)


def up_command(config: ConfigOption = None) -> None:
    """Start a local Prefect server, the demo service and every duty on its schedule."""
    from vigil.demo import INBOX_PORT, start_demo, start_inbox
    from vigil.runtime import configured_api_url

    path = _config_or_example(config)
    loaded = config_for(path)
    started_server = configured_api_url() is None and not _listening(4200)
    connect_prefect(server_stays=False)
    servers = []
    if not _listening(8765):
        servers.append(start_demo())
    if not _listening(INBOX_PORT):
        servers.append(start_inbox(lambda line: out.print(line, markup=False)))
    out.print(f"vigil: config {path} ({loaded.summary()})", markup=False)
    out.print("vigil: dashboard at http://127.0.0.1:4200 — Ctrl-C stops everything", markup=False)
    try:
        _first_sweep(path)
        _serve(path)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.shutdown()
        if started_server:
            subprocess.run(
                [sys.executable, "-m", "prefect", "server", "stop"],
                capture_output=True,
                check=False,
            )
            out.print("vigil: stopped the local Prefect server", markup=False)


def serve_command(config: ConfigOption = None) -> None:
    """Serve every duty of the config on its schedule in this process (needs a Prefect server)."""
    config_for(config)
    connect_prefect()
    path = resolve_path(config_path(config)).resolve()
    with contextlib.suppress(KeyboardInterrupt):
        _serve(path)


def demo_command(
    switch: str = typer.Option("", help="Turn /switchable on or off and exit."),
    port: int = typer.Option(8765, help="Port of the demo service."),
) -> None:
    """Run the demo service the example config monitors (or flip its switch)."""
    import time

    from vigil.demo import set_switch, start_demo

    if switch:
        if switch not in ("on", "off"):
            err.print("--switch takes on or off", markup=False)
            raise typer.Exit(2)
        set_switch(switch == "on")
        out.print(f"demo: /switchable is now {switch}", markup=False)
        return
    start_demo(port=port)
    out.print(f"demo service on http://127.0.0.1:{port} (Ctrl-C to stop)", markup=False)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def _config_or_example(config: Path | None) -> Path:
    from vigil.paths import vigil_home

    chosen = resolve_path(config_path(config))
    if chosen.exists() or config_path(config):
        return chosen.resolve()
    example = vigil_home() / "vigil.yaml"
    if not example.exists():
        from importlib.resources import files

        example.write_text(files("vigil").joinpath("example.yaml").read_text(encoding="utf-8"))
        out.print(f"vigil: wrote the example config to {example}", markup=False)
    return example


def _first_sweep(path: Path) -> None:
    from flows.sweep import uptime_sweep
    from vigil.cliutil import run_flow

    _, _, message = run_flow(uptime_sweep, config_path=str(path))
    out.print(f"vigil: first sweep — {message}", markup=False)


def _serve(path: Path) -> None:
    from deployments.serve import serve
    from vigil.config import load_config

    serve(load_config(path), str(path))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0
