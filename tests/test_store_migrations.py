"""Migrations: an empty database reaches exactly the models' schema, re-opening keeps data,
the up-to-date path skips Alembic, and racing first opens do not trip over each other."""

from __future__ import annotations

from datetime import UTC, datetime
from threading import Barrier

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

import vigil.store
from tests.fixtures.postgres import run_in_processes
from vigil.store import (
    MIGRATIONS,
    Base,
    Incident,
    alembic_config,
    create_store_engine,
    open_store,
)
from vigil.store.models import SCHEMA_REVISION

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def recorded_revision(url: str) -> list[str]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            return list(versions.scalars())
    finally:
        engine.dispose()


def test_schema_revision_is_the_alembic_head() -> None:
    with create_store_engine("sqlite://").connect() as connection:
        head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
    assert head == SCHEMA_REVISION, "bump SCHEMA_REVISION in vigil/store/models.py"
    assert {p.name for p in MIGRATIONS.iterdir()} >= {"env.py", "script.py.mako", "versions"}


def test_empty_database_migrates_to_exactly_the_models(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    assert differences == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert recorded_revision(store_url) == [SCHEMA_REVISION]


def test_reopening_and_upgrading_keep_rows(store_url: str) -> None:
    with open_store(store_url) as store, store.session() as session:
        session.add(Incident(monitor="api", state="DOWN", started_at=NOW, severity="high"))
    with open_store(store_url) as store:
        with store.engine.connect() as connection, connection.begin():
            command.upgrade(alembic_config(connection), "head")  # the full path, not the fast one
        with store.session() as session:
            kept = session.scalars(select(Incident)).one()
    assert (kept.monitor, kept.started_at) == ("api", NOW)
    assert recorded_revision(store_url) == [SCHEMA_REVISION]


def test_up_to_date_store_opens_without_alembic(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(store_url).close()

    def refuse(*_: object) -> None:
        raise AssertionError("the fast path must not take the migration lock")

    monkeypatch.setattr(vigil.store, "_migration_lock", refuse)
    open_store(store_url).close()


def test_downgrade_to_empty_then_open_again(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_store_engine(store_url)
    with engine.connect() as connection, connection.begin():
        command.downgrade(alembic_config(connection), "base")
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    engine.dispose()
    with open_store(store_url) as store, store.session() as session:
        assert session.scalars(select(Incident)).all() == []


def open_at_once(barrier: Barrier, url: str) -> None:
    """Child process: open a fresh store at the same instant as its siblings, then write."""
    barrier.wait()
    with open_store(url) as store, store.session() as session:
        session.add(Incident(monitor="api", state="DOWN", started_at=NOW, severity="high"))


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    run_in_processes(open_at_once, store_url, count=6)
    assert recorded_revision(store_url) == [SCHEMA_REVISION]
    with open_store(store_url) as store, store.session() as session:
        assert len(session.scalars(select(Incident)).all()) == 6
