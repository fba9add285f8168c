"""When the database side fails (no such database, unreachable, pg_dump refused, pg_dump
missing or too old), the error names the database and where it was sought, never the
password; only what may heal by itself is retried; every failure is recorded and alerted."""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from flows.backup import daily_backup
from tests.backup_helpers import backups, configure, quick_retries, seed, task_run_counts
from tests.fixtures.receivers import HttpReceiver
from tests.helpers import run
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_api")

PASSWORD = "Sup3r-s3cret-pw"


def with_password(url: str, user: str | None = None, **changes: object) -> str:
    parsed = make_url(url).set(password=PASSWORD, **changes)  # type: ignore[arg-type]
    if user:
        parsed = parsed.set(username=user)
    return parsed.render_as_string(hide_password=False)


def assert_failed_without_leaking(
    tmp_path: Path, state: object, receiver: HttpReceiver, *fragments: str
) -> str:
    """The run failed, the catalog and the alert say why, and the password is nowhere."""
    message = getattr(state, "message", "") or ""
    assert getattr(state, "name", None) == "BackupFailed", message
    [record] = backups(tmp_path)
    [alert] = receiver.json_bodies()
    assert record.status == "failed" and alert["severity"] == "critical"
    assert PASSWORD not in json.dumps(alert)
    for text in (message, record.error or "", alert["summary"]):
        assert PASSWORD not in text
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in {text!r}"
    return message


def test_a_missing_database_is_named_not_retried_and_its_password_hidden(
    tmp_path: Path, pg_database: str, webhook_receiver: HttpReceiver
) -> None:
    url = with_password(pg_database, database="vigil_no_such_db")
    config = configure(tmp_path, url, (tmp_path / "b").as_uri(), hook=webhook_receiver.url)

    state, _ = run(daily_backup, config_path=str(config))

    assert_failed_without_leaking(
        tmp_path,
        state,
        webhook_receiver,
        "cannot connect to database 'main' at postgres@127.0.0.1:5432/vigil_no_such_db",
        'database "vigil_no_such_db" does not exist',
    )
    assert task_run_counts(state)["snapshot main"] == 1


def test_an_unreachable_server_is_retried_then_reported(
    tmp_path: Path,
    pg_database: str,
    webhook_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_retries(monkeypatch)
    port = free_port()
    url = with_password(pg_database, port=port)
    config = configure(tmp_path, url, (tmp_path / "b").as_uri(), hook=webhook_receiver.url)

    state, _ = run(daily_backup, config_path=str(config))

    assert_failed_without_leaking(
        tmp_path,
        state,
        webhook_receiver,
        f"cannot connect to database 'main' at postgres@127.0.0.1:{port}/",
    )
    assert task_run_counts(state)["snapshot main"] == 4


@pytest.fixture
def reader(pg_database: str) -> Iterator[str]:
    """A role that may log in and read the catalogs but not the table `payroll`."""
    role = f"vigil_reader_{secrets.token_hex(4)}"
    with psycopg.connect(pg_database, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        connection.execute("CREATE TABLE payroll (id int PRIMARY KEY, amount int)")
    yield role
    with psycopg.connect(pg_database, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_pg_dump_refused_names_the_table_and_hides_the_password(
    tmp_path: Path, pg_database: str, reader: str, webhook_receiver: HttpReceiver
) -> None:
    seed(pg_database)
    url = with_password(pg_database, user=reader)
    config = configure(
        tmp_path,
        url,
        (tmp_path / "b").as_uri(),
        hook=webhook_receiver.url,
        database={"exact_counts": False},  # estimates: the snapshot itself reads no table
    )

    state, _ = run(daily_backup, config_path=str(config))

    assert_failed_without_leaking(
        tmp_path,
        state,
        webhook_receiver,
        f"pg_dump of database 'main' at {reader}@127.0.0.1:5432/",
        "permission denied for table payroll",
    )
    assert task_run_counts(state)["dump main"] == 1
    assert list((tmp_path / "b" / "main").iterdir()) == [], "a failed dump must leave no file"


def fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_pg_dump_missing_or_older_than_the_server_says_what_to_install(
    tmp_path: Path,
    pg_database: str,
    webhook_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(pg_database)
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    config = configure(tmp_path, pg_database, (tmp_path / "b").as_uri(), hook=webhook_receiver.url)

    state, _ = run(daily_backup, config_path=str(config))

    assert state.name == "BackupFailed"
    assert "pg_dump not found on PATH; install the PostgreSQL client tools" in (state.message or "")

    fake_tool(tools, "pg_dump", 'echo "pg_dump (PostgreSQL) 11.22"\n')
    state, _ = run(daily_backup, config_path=str(config))

    assert state.name == "BackupFailed"
    message = state.message or ""
    assert (
        "pg_dump 11.22 at" in message and "is older than the server of database 'main'" in message
    )
    assert "install postgresql-client-15" in message
    assert [b.status for b in backups(tmp_path)] == ["failed", "failed"]
