"""`vigil verify-deploy`, `vigil rollback`, `vigil deploy-gate`: deploy verification by hand
or from a pipeline's one-line step.

verify-deploy and rollback run the `deploy-verify` / `deploy-rollback` flows (so every run
shows in the Prefect UI) and exit 0 when the release (or the restored one) is healthy, 1
otherwise. deploy-gate only reads vigil's records: no Prefect, quick enough for every
pipeline run.
"""

from __future__ import annotations

from typing import Annotated, Any

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
from vigil.config import Config

TargetArgument = Annotated[str, typer.Argument(help="A deploy target's name under `deploys:`.")]
ReleaseOption = Annotated[
    str, typer.Option("--release", help="The release id (directory name, commit, tag...).")
]


def register(app: typer.Typer) -> None:
    app.command("verify-deploy")(verify_deploy_command)
    app.command("rollback")(rollback_command)
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

    Exit 0 when the release passed, 1 when it failed (rolled back or not), 2 for bad usage.
    """
    _check_target(config_for(config), target)
    from flows.deploy import deploy_verify

    ok, summary, message = run_flow(
        deploy_verify,
        target=target,
        release=release,
        dry_run=dry_run,
        config_path=config_param(config),
    )
    _report(ok, summary, message, json_output)


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

    Exit 0 when the restored release passed verification, 1 otherwise.
    """
    _check_target(config_for(config), target)
    from flows.deploy import deploy_rollback

    ok, summary, message = run_flow(
        deploy_rollback, target=target, to=to, config_path=config_param(config)
    )
    _report(ok, summary, message, json_output)


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


def _report(ok: bool, summary: Any, message: str, json_output: bool) -> None:
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        out.print((summary or {}).get("headline") or message, markup=False)
        for line in (summary or {}).get("lines", []):
            out.print(f"  {line}", markup=False)
    if not ok:
        raise typer.Exit(1)
