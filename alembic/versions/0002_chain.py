"""Tamper evidence: a hash chain over the command rows, the head it reached, snapshots bound to it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Existing rows get their chain computed in order from the profile (storage.chain, version 1), so a
journal written before this revision verifies as one written after it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from margin_engine.storage.chain import genesis, link_row

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("chain", sa.String(64), nullable=True))
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("chain", sa.String(64), nullable=True))
    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_journal_head_one_row"),
    )
    _fill_chain(op.get_bind())
    with op.batch_alter_table("commands") as batch:
        batch.alter_column("chain", existing_type=sa.String(64), nullable=False)
    with op.batch_alter_table("snapshots") as batch:
        batch.alter_column("chain", existing_type=sa.String(64), nullable=False)


def _fill_chain(conn: sa.Connection) -> None:
    toml = conn.execute(sa.text("SELECT toml FROM profile WHERE id = 1")).scalar_one_or_none()
    if toml is None:  # tables without a journal yet: Journal.create writes the head
        return
    snapshots = dict(conn.execute(sa.text("SELECT command_seq, state_hash FROM snapshots")).all())
    chain, seq = genesis(toml), 0
    rows = conn.execute(
        sa.text("SELECT seq, client_id, type, command, accepted, outcome FROM commands ORDER BY seq")
    ).all()
    for row in rows:
        events = [
            text
            for (text,) in conn.execute(
                sa.text("SELECT event FROM events WHERE command_seq = :seq ORDER BY idx"), {"seq": row.seq}
            )
        ]
        chain = link_row(
            chain,
            row,
            events,
            snapshots.get(row.seq),
        )
        seq = row.seq
        conn.execute(sa.text("UPDATE commands SET chain = :chain WHERE seq = :seq"), {"chain": chain, "seq": seq})
        if seq in snapshots:
            conn.execute(
                sa.text("UPDATE snapshots SET chain = :chain WHERE command_seq = :seq"), {"chain": chain, "seq": seq}
            )
    conn.execute(
        sa.text("INSERT INTO journal_head (id, seq, chain) VALUES (1, :seq, :chain)"), {"seq": seq, "chain": chain}
    )


def downgrade() -> None:
    op.drop_table("journal_head")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("chain")
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("chain")
