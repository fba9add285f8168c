"""Checks from several locations: what each location saw, with each check and state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

A monitor probed from several locations is judged by a quorum; what each location saw
("DOWN from eu-west, up from us-east") is kept with its check result and its state so
`vigil status`, the status page and reports can show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("check_results") as batch:
        batch.add_column(sa.Column("locations", sa.JSON(), nullable=True))
    with op.batch_alter_table("monitor_states") as batch:
        batch.add_column(sa.Column("locations", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_states") as batch:
        batch.drop_column("locations")
    with op.batch_alter_table("check_results") as batch:
        batch.drop_column("locations")
