"""`vigil restore-test`: the weekly restore test by hand, run as the `weekly-restore-test`
flow so the run, its artifact and its alerts are the same as the scheduled ones."""

from __future__ import annotations

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
from vigil.config import Config


def register(app: typer.Typer) -> None:
    app.command("restore-test")(restore_test_command)


def restore_test_command(
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", help="Only this database (a name under `databases:`)."),
    ] = None,
    backup: Annotated[
        str | None,
        typer.Option("--backup", "-b", help="Test this backup id instead of the newest verified."),
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Restore the newest verified backup of each database (or one) into a scratch database,
    prove it complete, time it, drop it. Exit 1 if any test failed or missed the RTO."""
    loaded = config_for(config)
    _check_usage(loaded, database, backup)
    from flows.restore_test import weekly_restore_test

    ok, summary, message = run_flow(
        weekly_restore_test, config_path=config_param(config), database=database, backup_id=backup
    )
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        for line in (summary or {}).get("lines") or [message]:
            out.print(line, markup=False)
    if not ok:
        raise typer.Exit(1)


def _check_usage(config: Config, database: str | None, backup: str | None) -> None:
    """Bad names are usage errors (exit 2), caught before any Prefect run starts."""
    if not config.databases:
        fail("no databases to test: add them under `databases:` in the config", 2)
    if config.restore_test.scratch_url is None:
        fail("restore_test.scratch_url is not set: name a server for scratch databases", 2)
    if database is not None and config.database(database) is None:
        known = ", ".join(d.name for d in config.databases)
        fail(f"no database named {database!r} under `databases:` (known: {known})", 2)
    if backup is not None:
        from vigil.backup.identity import parse_backup_id

        try:
            owner, _ = parse_backup_id(backup)
        except ValueError as exc:
            fail(str(exc), 2)
        if database is not None and owner != database:
            fail(f"backup {backup} belongs to database {owner!r}, not {database!r}", 2)
