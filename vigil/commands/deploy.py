"""`vigil verify-deploy`, `vigil rollback`, `vigil deploy-gate`: deploy verification by hand
or from a pipeline's one-line step.

verify-deploy and rollback run the `deploy-verify` / `deploy-rollback` flows (so every run
shows in the Prefect UI) and exit with the code of `vigil.deploy.exits` for their outcome,
so a pipeline can tell a rolled-back release from a failed rollback or a lock timeout.
deploy-gate only reads vigil's records: no Prefect, quick enough for every pipeline run.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vigil.cliutil import (
    ConfigOption,
    FlowRunOutcome,
    JsonOption,
    config_for,
    config_param,
    fail,
    out,
    print_json,
    run_flow_traced,
)
from vigil.config import Config
from vigil.deploy.exits import COULD_NOT_RUN, exit_code, help_text

TargetArgument = Annotated[str, typer.Argument(help="A deploy target's name under `deploys:`.")]
ReleaseOption = Annotated[
    str, typer.Option("--release", help="The release id (directory name, commit, tag...).")
]
EXIT_CODES_HELP = help_text()


def register(app: typer.Typer) -> None:
    app.command("verify-deploy", epilog=EXIT_CODES_HELP)(verify_deploy_command)
    app.command("rollback", epilog=EXIT_CODES_HELP)(rollback_command)
    app.command("deploy-gate")(deploy_gate_command)


def verify_deploy_command(
    target: TargetArgument,
    release: ReleaseOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Verify and say what would happen; never roll back.")
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Watch a new release for its verification window; roll back if it fails.

    Each outcome has its own exit code (listed below, and in the README), so a pipeline can
    tell a rolled-back release from a failed rollback or a lock timeout.
    """
    _ready(config, target)
    from flows.deploy import deploy_verify

    run = run_flow_traced(
        deploy_verify,
        unreachable_code=COULD_NOT_RUN.code,
        target=target,
        release=release,
        dry_run=dry_run,
        config_path=config_param(config),
    )
    _report(run, json_output)


def rollback_command(
    target: TargetArgument,
    to: Annotated[
        str | None,
        typer.Option("--to", help="The release to restore (default: the newest known-good)."),
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Roll a target back by hand and verify the restored release.

    Exit 0 when the restored release passed verification; the other codes are below.
    """
    _ready(config, target)
    from flows.deploy import deploy_rollback

    run = run_flow_traced(
        deploy_rollback,
        unreachable_code=COULD_NOT_RUN.code,
        target=target,
        to=to,
        config_path=config_param(config),
    )
    _report(run, json_output, by_hand=True)


def deploy_gate_command(
    target: TargetArgument,
    release: ReleaseOption,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Refuse (exit 1) a release vigil rolled back; exit 0 for any other release."""
    from vigil.deploy.history import rolled_back
    from vigil.store import open_store

    loaded = config_for(config)
    _check_target(loaded, target)
    with open_store(loaded.store.url) as store:
        record = rolled_back(store, target, release)
    if record is None:
        message = f"{target}@{release}: no rollback on record; ok to ship"
    else:
        when = record.started_at.strftime("%Y-%m-%d %H:%M UTC")
        run = f", flow run {record.flow_run_id}" if record.flow_run_id else ""
        why = (record.detail or record.verdict).splitlines()[0]
        message = (
            f"{target}@{release} was rolled back at {when} (verification #{record.id}{run}): "
            f"{why}. Ship a new release instead."
        )
    if json_output:
        print_json(
            {"target": target, "release": release, "refused": bool(record), "message": message}
        )
    else:
        out.print(message, markup=False)
    if record is not None:
        raise typer.Exit(1)


def _check_target(config: Config, target: str) -> None:
    if target not in config.deploys:
        known = ", ".join(sorted(config.deploys)) or "none are configured"
        fail(f"no deploy target named {target!r} under `deploys:` (known: {known})", 2)


def _ready(config: Any, target: str) -> None:
    """Before any run: a config that does not load, or a target whose checks cannot be set
    up, is `could not run` (nothing was verified or changed); an unknown target is usage."""
    loaded = config_for(config, code=COULD_NOT_RUN.code)
    _check_target(loaded, target)
    from flows.deploy import deploy_target

    try:
        deploy_target(loaded, target)
    except ValueError as exc:
        fail(str(exc), COULD_NOT_RUN.code)


def _report(run: FlowRunOutcome, json_output: bool, *, by_hand: bool = False) -> None:
    """Print the outcome (one JSON document with `--json`) and exit with its code."""
    summary = run.summary or {}
    code = exit_code(run.summary, by_hand=by_hand)
    if json_output:
        print_json(
            {
                "ok": run.ok,
                "exit_code": code.code,
                "outcome": code.name,
                "message": run.message,
                **summary,
                "flow_run_id": run.flow_run_id,
                "flow_run_url": run.flow_run_url,
            }
        )
    else:
        out.print(summary.get("headline") or run.message, markup=False)
        for line in summary.get("lines", []):
            out.print(f"  {line}", markup=False)
        if run.flow_run_url:
            out.print(f"  Flow run: {run.flow_run_url}", markup=False)
    if code.code:
        raise typer.Exit(code.code)
