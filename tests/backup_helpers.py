"""What the backup tests share: a real database with tables, indexes, constraints and data;
a config pointing at it; catalog and artifact readers; quick retries for fault tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy import select

from tests.fixtures.postgres import with_database
from tests.helpers import write_config
from vigil.store import Backup, BackupDeletion, BackupVerification, open_store

SCHEMA = """
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE monitors (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    name text NOT NULL CHECK (name <> '')
);
CREATE INDEX monitors_user_id ON monitors (user_id);
CREATE SCHEMA audit;
CREATE TABLE audit.events (id bigint PRIMARY KEY, at timestamptz NOT NULL, note text);
CREATE INDEX events_at ON audit.events (at);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, {users}) g;
INSERT INTO monitors (user_id, name) SELECT 1 + g % {users}, 'monitor ' || g
    FROM generate_series(1, {monitors}) g;
INSERT INTO audit.events SELECT g, now() - g * interval '1 minute', md5(g::text)
    FROM generate_series(1, {events}) g;
"""
# Hex text compresses about 2:1, like real data; pgbench rows would shrink to nothing.
BULK = """
CREATE TABLE IF NOT EXISTS bulk (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO bulk SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text)
    FROM generate_series(1, {rows}) g;
"""
EXPECTED = {"public.users": 40, "public.monitors": 120, "audit.events": 500}


def seed(url: str, *, users: int = 40, monitors: int = 120, events: int = 500) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            SCHEMA.format(users=int(users), monitors=int(monitors), events=int(events))
        )


def add_bulk(url: str, rows: int) -> None:
    """About 100 bytes of hex per row: 100,000 rows make a dump of roughly 6 MB."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(BULK.format(rows=int(rows)))
        connection.execute("ANALYZE")


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('public', 'audit') AND table_type = 'BASE TABLE'"
        ).fetchall()
        return {
            name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for (name,) in rows
        }


def configure(
    tmp_path: Path,
    database_url: str,
    storage: str,
    *,
    hook: str | None = None,
    database: dict[str, Any] | None = None,
    backup: dict[str, Any] | None = None,
) -> Path:
    """A config with one database `main` (critical tables, a row floor) and the storage."""
    main = {
        "name": "main",
        "url": database_url,
        "critical_tables": ["users", "monitors", "audit.events"],
        "min_rows": {"users": 1},
        **(database or {}),
    }
    body = {"databases": [main], "backup": {"storage": storage, **(backup or {})}}
    return write_config(tmp_path, yaml.safe_dump(body, sort_keys=False), hook=hook)


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vigil.db'}"


def backups(tmp_path: Path) -> list[Backup]:
    with open_store(store_url(tmp_path)) as store, store.session() as session:
        return list(session.scalars(select(Backup).order_by(Backup.created_at)))


def verifications(tmp_path: Path) -> list[BackupVerification]:
    with open_store(store_url(tmp_path)) as store, store.session() as session:
        return list(session.scalars(select(BackupVerification).order_by(BackupVerification.id)))


def deletions(tmp_path: Path) -> list[BackupDeletion]:
    with open_store(store_url(tmp_path)) as store, store.session() as session:
        return list(session.scalars(select(BackupDeletion).order_by(BackupDeletion.id)))


def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow's retried tasks keep their retry counts and conditions, with short pauses."""
    import flows.backup as module

    for name in ("take_snapshot", "dump", "read_stored", "store_object"):
        original = getattr(module, name)
        monkeypatch.setattr(
            module, name, original.with_options(retry_delay_seconds=0.2, retry_jitter_factor=None)
        )


def task_run_counts(state: Any) -> dict[str, int]:
    """How many times each task of a finished flow run ran (1 + its retries)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return {run.name: run.run_count for run in client.read_task_runs(flow_run_filter=flow_run)}


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Another empty database on the test server (a restore target), dropped afterwards."""
    name = f"vigil_restore_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
