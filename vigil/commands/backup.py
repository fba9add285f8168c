"""`vigil backup`, `vigil backups [prune]`, `vigil restore`: the backup duty by hand.

`vigil backup` runs the `daily-backup` flow (so the run shows in the Prefect UI). The other
commands need no Prefect at all: in a disaster the Prefect server may be gone too, and
`vigil restore` works from the storage alone when vigil's own store is lost (the manifest
next to each dump holds what the catalog holds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.cliutil import (
    ConfigOption,
    JsonOption,
    config_for,
    config_param,
    err,
    fail,
    out,
    print_json,
    run_flow,
)
from vigil.config import Config
from vigil.durations import format_size

if TYPE_CHECKING:
    from tasks.storage import Storage

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", "-d", help="Only this database (a name under `databases:`)."),
]

IdentityOption = Annotated[
    str | None,
    typer.Option(
        "--identity",
        "-i",
        help="The age identity that opens a sealed backup: a key file (as `age -i` reads) "
        "or env:NAME (default: restore_test.identity).",
    ),
]

backups_app = typer.Typer(
    help="The backup catalog: what exists, where, and whether it was verified."
)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
    app.add_typer(backups_app, name="backups")
    app.command("restore")(restore_command)


def backup_command(
    database: DatabaseOption = None, config: ConfigOption = None, json_output: JsonOption = False
) -> None:
    """Back up every database now (or one), verify, prune; exit 1 if any backup is not good."""
    loaded = config_for(config)
    _databases(loaded, database, "back up")
    _storage(loaded)
    from flows.backup import daily_backup

    ok, summary, message = run_flow(
        daily_backup, config_path=config_param(config), database=database
    )
    if json_output:
        print_json({"ok": ok, "message": message, **(summary or {})})
    else:
        out.print((summary or {}).get("headline") or message, markup=False)
    if not ok:
        raise typer.Exit(1)


@backups_app.callback(invoke_without_command=True)
def backups_command(
    context: typer.Context,
    database: DatabaseOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include backups retention has deleted.")
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the catalog, newest first: id, database, created, size, sha256, location, status."""
    if context.invoked_subcommand is not None:
        return
    from vigil.backup.catalog import catalog
    from vigil.store import open_store

    loaded = config_for(config)
    with open_store(loaded.store.url) as store:
        entries = [e for e in catalog(store, database) if show_all or not e.deleted]
    warnings = _unopenable(loaded, entries)
    if json_output:
        print_json([{**e.as_json(), "warning": warnings.get(e.id)} for e in entries])
        return
    if not entries:
        out.print("no backups on record (run `vigil backup`)", markup=False)
        return
    header = f"{'BACKUP':<36} {'CREATED (UTC)':<19} {'SIZE':>9} {'STATUS':<9} {'VERIFIED':<12} "
    out.print(header + f"{'SHA-256':<16} LOCATION", markup=False)
    for e in entries:
        size = format_size(e.size_bytes) if e.size_bytes is not None else "-"
        status = "deleted" if e.deleted else e.status
        verified = "verified" if e.verified else "NOT verified"
        sealed = f" sealed for {', '.join(e.sealed_for)}" if e.sealed_for else ""
        out.print(
            f"{e.id:<36} {e.created_at:%Y-%m-%d %H:%M:%S} {size:>9} {status:<9} {verified:<12} "
            f"{(e.sha256 or '-')[:16]} {e.location or e.error or ''}{sealed}",
            markup=False,
        )
        if e.globals:
            out.print(f"{'':<37}{e.globals}", markup=False)
    for backup, warning in warnings.items():
        err.print(f"warning: {backup}: {warning}", markup=False)


def _unopenable(config: Config, entries: list[Any]) -> dict[str, str]:
    """Backups (not deleted) that no identity at hand can open: judged by the configured
    identities (restore_test.identity, drill.identity) where readable here, else by the
    current recipient list (a backup sealed only for rotated-out keys)."""
    from vigil.backup.sealing import Identities, SealError, load_identities, unopenable

    found = []
    for source, setting in (
        (config.restore_test.identity, "restore_test.identity"),
        (config.drill.identity, "drill.identity"),
    ):
        if source:
            try:
                found.append(load_identities(source, setting))
            except SealError as exc:
                err.print(f"warning: {exc}", markup=False)
    identities = Identities.joined(found)
    current = config.backup.encrypt.recipients if config.backup.encrypt else []
    warnings = {}
    for e in entries:
        why = "" if e.deleted else unopenable(e.sealed_for, identities, current)
        if why:
            warnings[e.id] = why
    return warnings


@backups_app.command("prune")
def prune_command(
    database: DatabaseOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Apply `backup.retention` now: delete what it does not keep (dump, manifest, config
    archive together) and record each deletion. The newest verified backup always stays."""
    from tasks.storage import StorageError
    from tasks.storage.retention import prune
    from vigil.backup.catalog import candidates
    from vigil.store import open_store

    loaded = config_for(config)
    names = _databases(loaded, database, "prune")
    storage = _storage(loaded)
    report: dict[str, Any] = {}
    with open_store(loaded.store.url) as store:
        for name in names:
            try:
                decisions = prune(
                    store,
                    storage,
                    name,
                    candidates(store, name),
                    loaded.backup.retention,
                    dry_run=dry_run,
                )
            except StorageError as exc:
                fail(f"pruning {name} stopped: {exc}", 1)
            report[name] = [
                {"backup_id": d.backup_id, "keep": d.keep, "reasons": list(d.reasons)}
                for d in decisions
            ]
            if not json_output:
                _print_decisions(name, decisions, dry_run)
    if json_output:
        print_json({"dry_run": dry_run, "databases": report})


def _print_decisions(database: str, decisions: list[Any], dry_run: bool) -> None:
    gone = [d for d in decisions if not d.keep]
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{database}: {len(decisions) - len(gone)} kept, {len(gone)} {verb}", markup=False)
    for d in decisions:
        mark = "keep  " if d.keep else verb
        out.print(f"  {mark} {d.backup_id}: {', '.join(d.reasons)}", markup=False)


def restore_command(
    backup_id: Annotated[str, typer.Argument(help="A backup id from `vigil backups`.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The target database URL (postgresql://...), empty unless --clean."
        ),
    ],
    clean: Annotated[
        bool,
        typer.Option("--clean", help="Drop the archive's objects in the target before restoring."),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1, help="Parallel pg_restore jobs (default: restore_test.jobs)."
        ),
    ] = None,
    no_owner: Annotated[
        bool,
        typer.Option("--no-owner", help="Skip ownership and grants (roles missing on the target)."),
    ] = False,
    no_globals: Annotated[
        bool,
        typer.Option(
            "--no-globals",
            help="Do not create the roles the archive needs from the globals saved with the "
            "backup (missing roles are then only named).",
        ),
    ] = False,
    identity: IdentityOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Restore a backup: fetch, prove its checksum, pg_restore (in its own process group,
    within restore_test.hard_timeout), and check the copy as the restore test does.

    First the roles the archive refers to that the target server lacks are created from
    the globals saved with the backup (never altering a role that exists; tablespaces are
    skipped and named); --no-globals leaves the server's roles alone.

    Exit 0 when the copy holds everything the manifest recorded; 1 when the backup is
    unusable (bad checksum, failed restore) or anything is missing or differs; 2 for bad
    usage (including a non-empty target without --clean). A SIGTERM stops pg_restore and
    removes the downloaded archive before exiting.
    """
    from tasks.recovery import RecoveryError, RestoreRefused, Stopped, recover, stops_as_exceptions
    from tasks.storage import StorageError
    from vigil.backup.identity import BackupError, parse_backup_id
    from vigil.restore_test import hard_limit

    loaded = config_for(config)
    try:
        parse_backup_id(backup_id)
    except ValueError as exc:
        fail(str(exc), 2)
    if not to.startswith(("postgresql://", "postgres://")):
        fail(f"--to must be a postgresql:// URL, not {to!r}", 2)
    record = _usable_record(loaded, backup_id)
    storage = _storage(loaded)
    err.print(f"restoring {backup_id} into the target ...", markup=False)
    try:
        with stops_as_exceptions():
            report = recover(
                storage,
                backup_id,
                to,
                timeout=hard_limit(loaded).total_seconds(),
                jobs=jobs or loaded.restore_test.jobs,
                clean=clean,
                owners=not no_owner,
                expected_sha256=record.sha256 if record else None,
                in_catalog=record is not None,
                amcheck=loaded.restore_test.amcheck,
                identity=identity or loaded.restore_test.identity,
                globals=not no_globals,
            )
    except RestoreRefused as exc:
        fail(f"refused: {exc}", 2 if exc.usage else 1)
    except (BackupError, RecoveryError, StorageError) as exc:
        fail(f"restore failed: {exc}", 1)
    except Stopped as exc:
        fail(f"restore {exc}: pg_restore was stopped; the target may hold a partial copy", 1)
    if json_output:
        print_json(report.as_json())
    else:
        for line in report.lines():
            out.print(line, markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _usable_record(config: Config, backup_id: str) -> Any:
    """The catalog's row of the backup (None when this store does not know it: a restore
    works from the manifest alone); exit 1 when retention deleted it or it never
    completed."""
    from vigil.backup.catalog import find_backup, find_deletion
    from vigil.store import open_store

    with open_store(config.store.url) as store:
        record = find_backup(store, backup_id)
        deleted = find_deletion(store, backup_id)
    if deleted is not None:
        when = f"{deleted.deleted_at:%Y-%m-%d %H:%M} UTC"
        fail(f"{backup_id} was deleted by retention at {when} ({deleted.reason}); pick another", 1)
    if record is not None and record.status != "succeeded":
        fail(
            f"{backup_id} {record.status}: {record.error or 'it never completed'}; pick another", 1
        )
    return record


def _databases(config: Config, name: str | None, action: str) -> list[str]:
    """The databases named on the command line (all by default); unknown ones are exit 2."""
    try:
        return [d.name for d in config.databases_for(name, action)]
    except ValueError as exc:
        fail(str(exc), 2)


def _storage(config: Config) -> Storage:
    """The configured storage; a URL that names no place is bad config (exit 2)."""
    from tasks.storage import open_storage

    try:
        return open_storage(config.backup)
    except ValueError as exc:
        fail(str(exc), 2)
