"""Shard handoffs: a sharded uptime sweep's shards hand their checks to the parent sweep.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Workers on other machines share no filesystem, only the records store, so that is where a
shard leaves its checks for the one run that decides states and alerts.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shard_handoffs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sweep_id", sa.String(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("handed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shard_handoffs")),
    )
    op.create_index("ix_shard_handoffs_sweep_id", "shard_handoffs", ["sweep_id"])


def downgrade() -> None:
    op.drop_table("shard_handoffs")  # drops its index with it
