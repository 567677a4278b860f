"""What someone who edits a journal database by hand does, for the tamper tests: edit rows, and, to get
past the hash chain, rebuild it (and the head row and side file) the way the writer would."""

from __future__ import annotations

import sqlalchemy as sa

from margin_engine.storage.chain import Head, HeadFile, genesis, link_row
from margin_engine.storage.schema import commands, events, journal_head, profile, snapshots


def edit(db_url: str, *statements) -> None:
    db = sa.create_engine(db_url)
    with db.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    db.dispose()


def rechain(db_url: str) -> None:
    """Recompute every link from the stored texts, as an attacker with write access could."""
    db = sa.create_engine(db_url)
    with db.begin() as conn:
        chain = genesis(conn.execute(sa.select(profile.c.toml)).scalar_one())
        hashes = dict(conn.execute(sa.select(snapshots.c.command_seq, snapshots.c.state_hash)).all())
        seq = 0
        for row in conn.execute(sa.select(commands).order_by(commands.c.seq)).all():
            texts = [
                t
                for (t,) in conn.execute(
                    sa.select(events.c.event).where(events.c.command_seq == row.seq).order_by(events.c.idx)
                )
            ]
            chain = link_row(
                chain,
                row,
                texts,
                hashes.get(row.seq),
            )
            seq = row.seq
            conn.execute(sa.update(commands).where(commands.c.seq == seq).values(chain=chain))
            if seq in hashes:
                conn.execute(sa.update(snapshots).where(snapshots.c.command_seq == seq).values(chain=chain))
        conn.execute(sa.update(journal_head).values(seq=seq, chain=chain))
    if db.url.get_backend_name() == "sqlite":
        HeadFile(db.url.database).write(Head(seq, chain))
    db.dispose()
