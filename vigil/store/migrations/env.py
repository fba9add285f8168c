"""Alembic environment: runs only on the connection vigil hands over (see `alembic_config`).

vigil migrates itself when a store is opened, under a lock, so there is no URL, no
alembic.ini and no offline mode here.
"""

from __future__ import annotations

from alembic import context

from vigil.store.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through vigil.store (open_store or alembic_config)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
