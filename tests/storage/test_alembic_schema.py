"""One schema, two ways to build it: `Journal.create` (create_all, then stamps the revision) and
`alembic upgrade head`. They must agree, on SQLite and PostgreSQL, and the code must stamp the head."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from journal_workload import profile_text

from margin_engine.storage import Journal
from margin_engine.storage.schema import SCHEMA_REVISION, metadata

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False  # leave pytest's logging alone
    return config


def schema_of(url: str) -> tuple[str | None, list]:
    """The stamped revision, and what autogenerate would change to reach the metadata (nothing, we hope)."""
    db = sa.create_engine(url)
    with db.connect() as conn:
        context = MigrationContext.configure(conn)
        revision, diff = context.get_current_revision(), compare_metadata(context, metadata)
    db.dispose()
    return revision, diff


def test_the_code_stamps_the_alembic_head():
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == SCHEMA_REVISION


def test_the_migration_builds_what_the_metadata_says(db_url):
    command.upgrade(alembic_config(db_url), "head")
    assert schema_of(db_url) == (SCHEMA_REVISION, [])
    # a migrated database takes a journal, which opens as any other
    with Journal.create(db_url, profile_text()) as journal:
        journal.submit(journal.load(), {"type": "open_account", "account": "a"})
    with Journal.open(db_url) as journal:
        assert list(journal.load().state.accounts) == ["a"]


def test_a_created_journal_is_at_head_and_migrations_find_nothing_to_do(db_url):
    Journal.create(db_url, profile_text()).close()
    assert schema_of(db_url) == (SCHEMA_REVISION, [])
    command.upgrade(alembic_config(db_url), "head")
    assert schema_of(db_url) == (SCHEMA_REVISION, [])


def test_downgrade_to_base_removes_the_tables(db_url):
    command.upgrade(alembic_config(db_url), "head")
    command.downgrade(alembic_config(db_url), "base")
    db = sa.create_engine(db_url)
    assert set(sa.inspect(db).get_table_names()) <= {"alembic_version"}
    db.dispose()
