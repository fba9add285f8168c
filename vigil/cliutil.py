"""What every `vigil` command shares: config loading, exit codes, JSON output, running a flow.

Exit codes are a contract scripts rely on: 0 the duty ran and all is well; 1 the duty ran
and found a problem (or could not do its work); 2 bad usage or bad config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from vigil.boundary import terminal
from vigil.config import Config, ConfigError, load_config
from vigil.redact import redact
from vigil.runtime import summary_of


class TerminalConsole(Console):
    """rich's Console, with every string passed through the boundary first (`terminal`):
    secrets masked, and no escape sequence from a target's body or a process's output can
    act on the operator's terminal."""

    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(terminal(o) if isinstance(o, str) else o for o in objects), **options)


out = TerminalConsole(highlight=False, soft_wrap=True)
err = TerminalConsole(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="Config file (default: $VIGIL_CONFIG, else ./vigil.yaml, then $VIGIL_HOME/vigil.yaml)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]


class GlobalOptions:
    """Options given before the command (`vigil -c x.yaml sweep`)."""

    config_path: Path | None = None
    loaded: Config | None = None  # the config this command loaded (config_for)


options = GlobalOptions()


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(redact(message), markup=False)
    raise typer.Exit(code)


def config_path(path: Path | None) -> Path | None:
    return path or options.config_path


def config_param(path: Path | None) -> str | None:
    """The config path as a flow parameter: absolute, so a served run finds the same file."""
    chosen = config_path(path)
    from vigil.config import resolve_path

    return str(resolve_path(chosen).resolve())


def config_for(path: Path | None, code: int = 2) -> Config:
    """Load the config named on the command line; bad config is exit code 2 (`code` for a
    command with exit codes of its own: `vigil verify-deploy`)."""
    try:
        options.loaded = load_config(config_path(path))
        return options.loaded
    except ConfigError as exc:
        where = f" in {exc.path}" if exc.path else ""
        err.print(f"{len(exc.errors)} problem(s){where}:", markup=False)
        for line in exc.errors:
            err.print(f"  {line}", markup=False)
        raise typer.Exit(code) from None


def print_json(document: Any) -> None:
    sys.stdout.write(redact(json.dumps(document, indent=2, default=str)) + "\n")


def connect_prefect(*, server_stays: bool = True, run_retention: Any = None, code: int = 1) -> None:
    """Find (or start) the Prefect API for a command; one line and exit 1 if it is not
    reachable or refuses vigil's credentials (PREFECT_API_AUTH_STRING), not a traceback.
    `server_stays=False` when the command stops a server it started (`vigil up`)."""
    from vigil.runtime import ensure_prefect_api

    try:
        ensure_prefect_api(
            server_stays=server_stays, run_retention=run_retention or _run_retention()
        )
    except RuntimeError as exc:
        fail(f"cannot reach Prefect: {exc}", code)


def _run_retention() -> Any:
    """The loaded config's `retention.prefect_runs` for a server vigil starts, else the
    default's. (Never loads a config itself: loading registers that file's secrets for
    redaction in place of the command's.)"""
    from vigil.config import RecordsRetention

    retention = options.loaded.retention if options.loaded else RecordsRetention()
    return retention.prefect_runs_horizon


def run_flow(
    flow: Callable[..., Any], *, heartbeats: bool = True, **parameters: Any
) -> tuple[bool, Any, str]:
    """Run a duty's flow against the Prefect API (so the run shows in the UI), tagged like
    the duty's deployment (`vigil`, `uptime`, ...) so the runs list filters them together.

    Returns (ok, summary, message): ok is False when the run ended in any non-Completed
    state, summary is what the flow returned (or None if it crashed), message is the
    final state's message.

    `heartbeats=False` is for runs that last seconds (a sweep): Prefect's heartbeat thread
    wakes once a second, and the run waits for it to end, which cost up to a second per
    `vigil sweep`; a run that short never reaches the next heartbeat anyway (every 180 s).
    """
    run = run_flow_traced(flow, heartbeats=heartbeats, **parameters)
    return run.ok, run.summary, run.message


@dataclass(frozen=True)
class FlowRunOutcome:
    """How a flow run a command started ended, and where to see it."""

    ok: bool
    summary: Any
    message: str
    flow_run_id: str | None
    flow_run_url: str | None


def run_flow_traced(
    flow: Callable[..., Any],
    *,
    heartbeats: bool = True,
    unreachable_code: int = 1,
    **parameters: Any,
) -> FlowRunOutcome:
    """`run_flow`, also saying which flow run it was and its dashboard URL (for `--json`).
    A Prefect API that does not answer exits `unreachable_code`."""
    from prefect import tags
    from prefect.settings import temporary_settings

    from vigil.duties import tags_of
    from vigil.runtime import flow_run_url

    connect_prefect(code=unreachable_code)
    settings = {} if heartbeats else {"flows.heartbeat_frequency": None}
    duty_tags = tags_of(getattr(flow, "name", ""))
    with temporary_settings(updates=settings), tags(*duty_tags):
        state = flow(**parameters, return_state=True)
    run_id = state.state_details.flow_run_id
    ids = (str(run_id), flow_run_url(str(run_id))) if run_id else (None, None)
    try:
        summary = summary_of(state)
    except Exception as exc:  # the run crashed before returning a summary
        return FlowRunOutcome(False, None, redact(state.message or str(exc)), *ids)
    if isinstance(summary, BaseException):
        return FlowRunOutcome(False, None, redact(state.message or str(summary)), *ids)
    return FlowRunOutcome(bool(state.is_completed()), summary, redact(state.message or ""), *ids)


def exit_now(code: int | str | None) -> NoReturn:
    """End the process the way the interpreter would, minus tearing down its modules.

    A command that ran a flow has imported some 1,600 modules (Prefect, SQLAlchemy,
    aiohttp...); freeing them one by one at exit took 0.3-0.6 s of every `vigil sweep`.
    Everything that matters still happens first, in the interpreter's own order: other
    threads are joined, then every atexit handler runs (Prefect sends its last logs and
    events there), then the output is flushed.
    """
    import atexit
    import os
    import threading

    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`vigil status | head -1`), a full disk
            code = code or 120  # what the interpreter exits with when it cannot flush
    os._exit(code or 0)
