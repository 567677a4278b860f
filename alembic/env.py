"""Alembic environment of the journal: the target is `margin_engine.storage.schema.metadata`.

The database: `alembic -x db=URL ...`, else `sqlalchemy.url` of the config (empty in alembic.ini, set by
programs that run migrations), else MARGIN_ENGINE_DB_URL; an SQLite path is taken as a file.
`Journal.create` stamps the head revision itself; run `alembic upgrade head` on every journal when a
later revision lands.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from margin_engine.storage.journal import database_url
from margin_engine.storage.schema import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("MARGIN_ENGINE_DB_URL")
    if not url:
        raise SystemExit("no database: pass -x db=URL or set MARGIN_ENGINE_DB_URL")
    return database_url(url)


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection") or sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    if isinstance(connectable, sa.Connection):
        _run(connectable)
        return
    with connectable.connect() as connection:
        _run(connection)


def _run(connection: sa.Connection) -> None:
    # batch mode: SQLite cannot ALTER most things, so later revisions copy and swap tables there
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
