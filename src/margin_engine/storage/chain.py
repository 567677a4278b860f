"""Tamper evidence for the journal: a hash chain over every command, and a high-water mark kept
outside the database.

Each command row carries `chain = sha256(previous chain, the row's stored texts, its events and the
hash of any snapshot written with it)`; the first link starts from the profile's TOML. Editing,
removing or reordering any stored text (an event, a command, an outcome, a snapshot's hash, the
profile) breaks every link after it. The chain head (last seq and chain) is kept in the database's
`journal_head` row, and, for SQLite, in a side file beside the database, written after each commit:
a database that lost its WAL file, or was replaced by an older copy, holds fewer commands than its
side file says. The chain is not keyed: whoever can rewrite the database and the side file can
rebuild both; publish the head elsewhere (a log, a chain) to anchor it beyond that.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

CHAIN_VERSION = "margin-engine journal chain v1"


def genesis(profile_toml: str) -> str:
    """The chain before the first command: bound to the journal's profile."""
    return _sha256(f"{CHAIN_VERSION}\n{profile_toml}")


def link(
    previous: str,
    seq: int,
    client_id: str | None,
    type: str,
    command: str,
    accepted: bool,
    outcome: str,
    events: list[str],
    snapshot_hash: str | None,
) -> str:
    """The chain after one command row, from the texts exactly as stored."""
    body = json.dumps(
        [previous, seq, client_id, type, command, bool(accepted), outcome, events, snapshot_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return _sha256(body)


def link_row(previous: str, row, events: list[str], snapshot_hash: str | None) -> str:
    """`link` of a command row as read back (anything with the `commands` columns as attributes)."""
    return link(
        previous, row.seq, row.client_id, row.type, row.command, row.accepted, row.outcome, events, snapshot_hash
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Head:
    seq: int
    chain: str


class HeadFile:
    """`<database>-head.json` beside an SQLite journal: the last committed (seq, chain). Written after
    the commit (replace, not fsync): it may lag the database after a crash, never lead it."""

    def __init__(self, database: str):
        self.path = Path(f"{database}-head.json")

    def read(self) -> Head | None:
        try:
            data = json.loads(self.path.read_text())
            return Head(int(data["seq"]), str(data["chain"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return Head(-1, "")  # unreadable: the caller reports it

    def write(self, head: Head) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"seq": head.seq, "chain": head.chain}))
        os.replace(tmp, self.path)
