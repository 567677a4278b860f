"""The journal's tables, in SQLAlchemy Core: the same DDL on SQLite and PostgreSQL.

JSON is kept as text, byte for byte as written: JSONB would reorder keys and lose the canonical text
that snapshot hashes are taken over. `SCHEMA_REVISION` is the Alembic revision these tables are;
`Journal.create` builds them with `create_all` and stamps that revision, and a test checks that
`alembic upgrade head` builds the same tables.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_REVISION = "0002"
CHAIN_LENGTH = 64  # sha256, hex
CLIENT_ID_LENGTH_MAX = 128

metadata = sa.MetaData()

profile = sa.Table(
    "profile",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: one profile per journal
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("toml", sa.Text, nullable=False),
    sa.CheckConstraint("id = 1", name="ck_profile_one_row"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # 1, 2, ... with no gap
    sa.Column("client_id", sa.String(CLIENT_ID_LENGTH_MAX), nullable=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("command", sa.Text, nullable=False),  # canonical JSON, as parsed and applied
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # {"events": count} or {"rejection": {...}}
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),  # wall clock, for logs only
    sa.Column("chain", sa.String(CHAIN_LENGTH), nullable=False),  # storage.chain.link over this row and before
    sa.UniqueConstraint("client_id", name="uq_commands_client_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("command_seq", sa.BigInteger, sa.ForeignKey("commands.seq", name="fk_events_command"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("event", sa.Text, nullable=False),  # Event.to_json
    sa.PrimaryKeyConstraint("command_seq", "idx", name="pk_events"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column(
        "command_seq",
        sa.BigInteger,
        sa.ForeignKey("commands.seq", name="fk_snapshots_command"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("state", sa.Text, nullable=False),  # canonical JSON of state_to_json
    sa.Column("state_hash", sa.String(64), nullable=False),  # sha256 of `state`
    sa.Column("chain", sa.String(CHAIN_LENGTH), nullable=False),  # the chain head it covers (its command's)
)

journal_head = sa.Table(
    "journal_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("seq", sa.BigInteger, nullable=False),  # the last command committed
    sa.Column("chain", sa.String(CHAIN_LENGTH), nullable=False),  # its chain
    sa.CheckConstraint("id = 1", name="ck_journal_head_one_row"),
)

# Alembic's own bookkeeping, written by Journal.create so that later migrations know where a journal stands.
alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), primary_key=True),
)
