"""The journal's first tables: profile, commands, events, snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-05-01

Written out column by column, not from the metadata: a migration stays what it was when later
revisions change `margin_engine.storage.schema`. A test checks that it builds what the metadata says.
When schema.py changes, add a revision and move SCHEMA_REVISION to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("toml", sa.Text, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_profile_one_row"),
    )
    op.create_table(
        "commands",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("client_id", sa.String(128), nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("client_id", name="uq_commands_client_id"),
    )
    op.create_table(
        "events",
        sa.Column("command_seq", sa.BigInteger, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["command_seq"], ["commands.seq"], name="fk_events_command"),
        sa.PrimaryKeyConstraint("command_seq", "idx", name="pk_events"),
    )
    op.create_table(
        "snapshots",
        sa.Column("command_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["command_seq"], ["commands.seq"], name="fk_snapshots_command"),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("events")
    op.drop_table("commands")
    op.drop_table("profile")
