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


def test_a_journal_written_before_the_chain_is_chained_by_the_migration(db_url, tmp_path):
    """0001 -> 0002 on a journal with commands and snapshots: every row gets its link, computed from the
    stored texts, and the journal then loads and audits as one written with the chain."""
    import random

    from journal_workload import workload

    from margin_engine.storage import audit_journal, replay_journal

    with Journal.create(db_url, profile_text(), snapshot_every=10) as journal:
        engine = journal.load()
        for start in range(0, 40, 8):
            journal.submit_batch(engine, [(c, None) for c in workload(random.Random(4), 20)[start : start + 8]])
        expected = replay_journal(journal)
    command.downgrade(alembic_config(db_url), "0001")  # as the journal was before the chain
    side = Path(db_url.removeprefix("sqlite:///") + "-head.json")
    side.unlink(missing_ok=True)
    db = sa.create_engine(db_url)
    assert "journal_head" not in sa.inspect(db).get_table_names()
    db.dispose()
    command.upgrade(alembic_config(db_url), "head")
    assert schema_of(db_url) == (SCHEMA_REVISION, [])
    with Journal.open(db_url) as journal:
        assert replay_journal(journal) == expected
        assert audit_journal(journal).commands == expected.commands == 40
        journal.load()
