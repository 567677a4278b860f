"""The durable journal: engine state snapshots, commands and events in SQL (SQLite or PostgreSQL).

`Journal.create(url, profile_text)` / `Journal.open(url)`, `journal.load() -> Engine`, then
`journal.submit(engine, command, client_id)` or `journal.submit_batch(engine, items)`: each command
is committed with its events before the engine applies them. See docs/storage.md.
"""

from margin_engine.storage.journal import (
    BATCH_MAX,
    SNAPSHOT_EVERY,
    ClientIdReused,
    CommandFailed,
    EngineDiverged,
    Entry,
    Journal,
    JournalConflict,
    JournalCorrupt,
    JournalExists,
    JournalMissing,
    JournalWriteFailed,
    Receipt,
    database_url,
)
from margin_engine.storage.snapshot import SnapshotFormatError, state_from_json, state_hash, state_to_json
from margin_engine.storage.verify import AuditReport, ReplayReport, audit_journal, replay_journal

__all__ = [
    "BATCH_MAX",
    "SNAPSHOT_EVERY",
    "AuditReport",
    "ClientIdReused",
    "CommandFailed",
    "EngineDiverged",
    "Entry",
    "Journal",
    "JournalConflict",
    "JournalCorrupt",
    "JournalExists",
    "JournalMissing",
    "JournalWriteFailed",
    "Receipt",
    "ReplayReport",
    "SnapshotFormatError",
    "audit_journal",
    "database_url",
    "replay_journal",
    "state_from_json",
    "state_hash",
    "state_to_json",
]
