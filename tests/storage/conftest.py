"""Storage tests run against SQLite, and against PostgreSQL when MARGIN_ENGINE_PG_URL names a database
they may empty (postgresql+psycopg://user:password@host/db; docs/storage.md shows how to make one)."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from margin_engine.storage import schema

PG_URL = os.environ.get("MARGIN_ENGINE_PG_URL")
PG_SKIP = (
    "PostgreSQL storage tests need MARGIN_ENGINE_PG_URL=postgresql+psycopg://user:password@host/db, "
    "a database they may empty (docs/storage.md, PostgreSQL)"
)


def drop_journal_tables(url: str) -> None:
    db = sa.create_engine(url)
    with db.begin() as conn:
        schema.metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty database for one journal: a fresh SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP)
    drop_journal_tables(PG_URL)
    yield PG_URL
    drop_journal_tables(PG_URL)
