"""The one recovery engine, shared by `vigil restore` (the real recovery), the weekly
restore test and the DR drill:

- `fetch`: the manifest, then the archive, its checksum proven before anything touches it;
- `restore`: pg_restore in its own process group, with a hard time limit, killed and
  cleaned up on SIGTERM;
- `inspect`: the restored copy's facts, judged by `vigil.recovery` (one comparison, one
  finding type) with the configured SQL checks;
- `scratch`: the scratch and rehearsal servers (their locks, databases and leftovers).

`recover` composes them for `vigil restore`; the restore test and the drill run the same
steps as their own Prefect tasks.
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tasks.globals import apply_globals, roles_on
from tasks.pg import CONNECT_TIMEOUT_S, USER_SCHEMAS, connect
from tasks.recovery.fetch import Fetched, RecoveryError, RestoreRefused, fetch, load_manifest
from tasks.recovery.inspect import inspect
from tasks.recovery.restore import restore
from tasks.recovery.scratch import create_database
from tasks.storage import Storage
from vigil.backup.globals import GlobalsApplied, missing_roles, missing_roles_problem
from vigil.backup.identity import describe_url
from vigil.config import SqlCheck
from vigil.recovery import Finding, RecoveryReport
from vigil.redact import error_line

__all__ = [
    "Fetched",
    "RecoveryError",
    "RestoreRefused",
    "Stopped",
    "apply_saved_globals",
    "check_target",
    "ensure_target",
    "fetch",
    "inspect",
    "load_manifest",
    "recover",
    "restore",
    "stops_as_exceptions",
]


class Stopped(BaseException):
    """A SIGTERM (or SIGHUP) arrived: raised where the program was, so every `finally`
    runs (pg_restore's group is killed, temporary files go) before the process ends."""

    def __init__(self, number: int) -> None:
        super().__init__(f"stopped by {signal.Signals(number).name}")
        self.signal = number


@contextmanager
def stops_as_exceptions() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Stopped` (Python's default would end the
    process at once, leaving pg_restore running). Only the main thread can do this; Prefect
    does the same for its flow runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, frame: FrameType | None) -> None:
        raise Stopped(number)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ensure_target(target_url: str) -> bool:
    """Create the target database when it does not exist (from template0, as a restore
    wants); True when this call created it. RestoreRefused saying exactly how to create
    it when this user may not."""
    params = conninfo_to_dict(target_url)
    name = str(params.get("dbname") or params.get("user") or "")
    try:
        with psycopg.connect(target_url, connect_timeout=CONNECT_TIMEOUT_S):
            return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc) or not name:
            return False  # check_target says what is wrong with it
    server = make_conninfo(target_url, dbname="postgres")
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
            create_database(admin, name)
    except (psycopg.Error, RecoveryError) as exc:
        raise RestoreRefused(
            f"the target database {name!r} does not exist on {describe_url(target_url)} and "
            f"cannot be created here ({error_line(exc) if isinstance(exc, psycopg.Error) else exc})"
            f"; create it empty from template0 (CREATE DATABASE {quote(name)} TEMPLATE "
            "template0, or createdb -T template0), then run the restore again"
        ) from None
    return True


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_target(target_url: str, *, clean: bool, jobs: int) -> int:
    """Refuse a target holding objects (unless `clean`); return how many jobs it can take."""
    with connect(target_url, what="the target") as connection:
        found = [
            str(row[0])
            for row in connection.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                f"AND {USER_SCHEMAS} ORDER BY 1 LIMIT 6"
            )
        ]
        free = connection.execute(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int "
            "- (SELECT count(*) FROM pg_stat_activity)"
        ).fetchone()
    if found and not clean:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise RestoreRefused(
            f"the target {describe_url(target_url)} is not empty ({shown}); restore into an "
            "empty database, or pass --clean to drop and recreate the archive's objects there",
            usage=True,
        )
    return max(1, min(jobs, int(free[0]) if free else 1))


def apply_saved_globals(fetched: Fetched, connection: psycopg.Connection[Any]) -> GlobalsApplied:
    """The backup's saved globals (as `fetch` read them back: checksum proven, unsealed)
    applied to the server `connection` is on (roles the database needs that the server
    lacks created; see `tasks.globals.apply_globals`); a file that could not be read is
    said in `problem`, never raised: the missing roles are then named as they always were."""
    if fetched.globals_sql is None:
        entry = fetched.manifest.get("globals") or {}
        if fetched.globals is not None and not fetched.globals.ok:
            reason = fetched.globals.problem or fetched.globals.observed
        else:
            reason = entry.get("error") or "none was saved with this backup"
        return GlobalsApplied(problem=f"no saved globals: {reason}")
    text = fetched.globals_sql.read_text(encoding="utf-8", errors="replace")
    return apply_globals(connection, text, fetched.manifest)


def recover(
    storage: Storage,
    backup: str,
    target_url: str,
    *,
    timeout: float,
    jobs: int = 2,
    clean: bool = False,
    owners: bool = True,
    expected_sha256: str | None = None,
    in_catalog: bool = True,
    amcheck: bool = True,
    checks: Sequence[SqlCheck] = (),
    workdir: Path | None = None,
    identity: str | None = None,
    globals: bool = True,
) -> RecoveryReport:
    """Fetch (checksum first), pg_restore into the target, and judge the copy with the
    restore test's comparison; RestoreRefused when going ahead could harm or mislead.
    With `globals`, the roles the archive needs that the target server lacks are first
    created from the globals saved with the backup."""
    started = time.monotonic()
    created = ensure_target(target_url)
    allowed = check_target(target_url, clean=clean, jobs=jobs)
    with tempfile.TemporaryDirectory(prefix="vigil-restore-", dir=workdir) as folder:
        fetched = fetch(
            storage, backup, Path(folder), expected_sha256=expected_sha256, identity=identity
        )
        with connect(target_url, what="the target") as connection:
            applied = apply_saved_globals(fetched, connection) if globals else None
            missing = missing_roles(fetched.manifest, roles_on(connection))
        if owners and missing:
            raise RestoreRefused(_roles_refusal(fetched.manifest, missing, applied, target_url))
        report = _report(fetched, backup, target_url, allowed, in_catalog)
        if applied is not None:
            report.globals = applied.as_json()
            report.globals_lines = applied.lines()
        report.created_target = created
        left = timeout - (time.monotonic() - started)
        report.restore_s = restore(
            fetched.archive,
            target_url,
            jobs=allowed,
            timeout=left,
            limit="the hard time limit (restore_test.hard_timeout)",
            clean=clean,
            owners=owners,
            subscriptions=True,
        )
    checked = time.monotonic()
    left = max(timeout - (checked - started), 1.0)
    compared = inspect(
        target_url,
        fetched.manifest,
        timeout=left,
        jobs=allowed,
        amcheck=amcheck,
        checks=checks,
        database=fetched.manifest["database"],
        privileges=owners,
    )
    report.findings, report.recovery_point = compared.findings, compared.recovery_point
    if applied is not None:
        server = describe_url(target_url)
        report.findings.append(applied.finding(fetched.manifest, missing, server))
    if fetched.globals is not None:
        report.findings = [*report.findings, informative(fetched.globals)]
    report.check_s = time.monotonic() - checked
    report.total_s = time.monotonic() - started
    return report


def _roles_refusal(
    manifest: dict[str, Any], missing: list[str], applied: GlobalsApplied | None, url: str
) -> str:
    """Why the restore did not start: the roles still missing, and what was created."""
    if applied is None:
        return missing_roles_problem(manifest, missing)
    said = applied.finding(manifest, missing, describe_url(url)).problem or ""
    created = ", ".join(applied.created)
    return said + (f" (created meanwhile: {created})" if created else "")


def informative(found: Finding) -> Finding:
    """For `vigil restore`, the globals file is an aid, not part of the copy: one that does
    not read back is said (as `globals file`), and does not make a complete copy INCOMPLETE
    (the restore test and the drill, which prove recoverability, fail on it)."""
    if found.ok:
        return Finding("globals file", True, found.expected, found.observed)
    return Finding("globals file", True, found.expected, f"NOT read back: {found.observed}")


def _report(
    fetched: Fetched, backup: str, target_url: str, jobs: int, in_catalog: bool
) -> RecoveryReport:
    manifest: dict[str, Any] = fetched.manifest
    dump = manifest["dump"]
    return RecoveryReport(
        backup_id=backup,
        database=manifest["database"],
        target=describe_url(target_url),
        created_at=manifest["created_at"],
        size_bytes=int(dump["size_bytes"]),
        sha256=dump["sha256"],
        jobs=jobs,
        in_catalog=in_catalog,
        fetch_s=fetched.seconds,
    )
