"""A restore test that meets a fault ends failed, with a reason a person can act on, a
critical alert at the webhook, and nothing left behind: no scratch database, no
temporary folder, no pg_restore still writing. Every fault is real: an object deleted
from S3, a function that raises only in the restored copy, a scratch server whose disk
is full (a tmpfs), a SIGTERM to the `vigil restore-test` process in the middle of
pg_restore."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.backup_helpers import add_bulk
from tests.fixtures.restore import Setup, SmallDisk, scratch_databases, work_folders

pytestmark = pytest.mark.usefixtures("prefect_api", "nothing_left_behind")

ROOT = Path(__file__).resolve().parents[1]
# Objects that behave in the source and misbehave only in a restored copy, whose name
# starts with vigil_restore_: the backup is good, the restore meets the fault.
IN_RESTORED_COPY = "current_database() LIKE 'vigil\\_restore\\_%'"
REFUSING_VIEW = f"""
CREATE FUNCTION refuse_restored_copy() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF {IN_RESTORED_COPY} THEN
        RAISE EXCEPTION 'this view cannot be computed in a restored copy';
    END IF;
    RETURN 1;
END $$;
CREATE MATERIALIZED VIEW user_summary AS SELECT refuse_restored_copy() AS one, count(*) AS n
    FROM users;
"""
SLOW_VIEW = f"""
CREATE FUNCTION slow_in_restored_copy() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF {IN_RESTORED_COPY} THEN
        PERFORM pg_sleep(600);
    END IF;
    RETURN 1;
END $$;
CREATE MATERIALIZED VIEW slow_summary AS SELECT slow_in_restored_copy() AS one;
"""


def execute(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statements.encode())


def failed_with(setup: Setup, state: Any, reason: str) -> str:
    """The run failed, its record says `reason`, and one critical alert says the same."""
    assert state.is_failed() and state.name == "RestoreTestFailed", state.message
    record = setup.latest()
    assert record.status == "failed" and record.checks == []
    assert record.error is not None and reason in record.error, record.error
    [alert] = setup.alerts()
    assert (alert["severity"], alert["subject"]) == ("critical", setup.name)
    assert alert["summary"] == record.error
    return record.error


def test_a_missing_manifest_fails_naming_the_object(setup: Setup) -> None:
    backup = setup.back_up()
    key = setup.object_key(backup, "manifest.json")
    setup.s3.client().delete_object(Bucket=setup.bucket, Key=key)

    state, _ = setup.restore_test()

    error = failed_with(
        setup, state, f"{backup}: no readable manifest at s3://{setup.bucket}/{key}"
    )
    assert "cannot be restored with checks" in error


def test_a_pg_restore_error_on_one_object_fails_with_its_message(setup: Setup) -> None:
    execute(setup.source, REFUSING_VIEW)
    setup.back_up()

    state, _ = setup.restore_test()

    where = f"pg_restore into postgres@127.0.0.1:5432/vigil_restore_{setup.name}_"
    error = failed_with(setup, state, where)
    assert "this view cannot be computed in a restored copy" in error
    assert "REFRESH MATERIALIZED VIEW public.user_summary" in error


def test_a_scratch_server_out_of_disk_fails_and_drops_the_scratch_database(
    setup: Setup, small_disk_server: SmallDisk
) -> None:
    add_bulk(setup.source, 150_000)
    setup.back_up()
    setup.settings["scratch_url"] = small_disk_server.url

    state, _ = setup.restore_test()

    error = failed_with(setup, state, "the scratch server ran out of disk space")
    assert 'COPY failed for table "bulk"' in error and "Check free disk space" in error
    assert scratch_databases(small_disk_server.url) == set()


def test_sigterm_in_the_middle_of_pg_restore_leaves_nothing_behind(setup: Setup) -> None:
    """The way a Prefect cancellation (or a shutdown) reaches a flow run: SIGTERM. The
    scratch database, the archive and pg_restore are gone when the process has exited,
    not only after the next run; the stop is recorded and alerted."""
    from prefect.settings import PREFECT_API_URL

    execute(setup.source, SLOW_VIEW)
    setup.back_up()
    folders = work_folders()
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "vigil", "restore-test", "-c", setup.config()]
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        scratch = wait_for_refresh(setup, child)

        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode != 0, output
    assert scratch not in scratch_databases(setup.server)
    assert work_folders() <= folders
    assert processes_naming(scratch) == []
    record = setup.latest()
    assert record.error == (
        "stopped by SIGTERM during pg_restore (cancelled or shut down) before the test could finish"
    )
    [alert] = setup.alerts()
    assert (alert["severity"], alert["summary"]) == ("critical", record.error)


def wait_for_refresh(setup: Setup, child: subprocess.Popen[str]) -> str:
    """The scratch database once pg_restore is busy in it (refreshing the slow view)."""
    pattern = f"vigil\\_restore\\_{setup.name}\\_%"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the run ended early: {child.communicate()[0]}"
        with psycopg.connect(setup.server, autocommit=True) as admin:
            row = admin.execute(
                "SELECT datname FROM pg_stat_activity WHERE datname LIKE %s AND state = 'active' "
                "AND query LIKE 'REFRESH MATERIALIZED VIEW%%'",
                (pattern,),
            ).fetchone()
        if row is not None:
            return str(row[0])
        time.sleep(0.1)
    raise AssertionError("pg_restore never reached the slow view")


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (pg_restore names its database)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found
