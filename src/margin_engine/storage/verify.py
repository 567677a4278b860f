"""Offline checks of a whole journal, from its first command: what `journal replay` and `journal audit` run.

- `replay_journal`: rebuild the state from every event and compare it, by hash, with the latest snapshot.
- `audit_journal`: the auditor. After every command, conservation and the clearing identity hold
  (`audit`), and the stored outcome is what the engine decides again from the stored command (so an
  edited event is found even where it keeps the books balanced); at every snapshot, the hashes agree.
  O(commands x ledger size): an offline tool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from margin_engine.engine import Rejection, State, audit, decide, parse_command
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.storage.journal import Entry, Journal, JournalCorrupt, evolve_entry
from margin_engine.storage.snapshot import state_hash


@dataclass(frozen=True)
class ReplayReport:
    commands: int
    events: int
    state_hash: str  # of the state after the last command
    snapshot_seq: int | None  # the latest snapshot, which the replay matched; None when there is none

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AuditReport:
    commands: int
    events: int
    state_hash: str
    snapshots_checked: int
    totals: dict[str, dict[str, int]]  # per asset, as `audit` reports them: deposits, withdrawals, users, ...


def replay_journal(journal: Journal) -> ReplayReport:
    """All events from an empty state; at the latest snapshot's command the state must hash as stored."""
    latest = journal.latest_snapshot()
    state = State(journal.profile)
    commands = events = 0
    for entry in journal.history():
        if latest is not None and entry.seq == latest[0] + 1:
            _check_snapshot(state, *latest)
        evolve_entry(state, entry)
        commands, events = entry.seq, events + _event_count(entry)
    if latest is not None and commands == latest[0]:
        _check_snapshot(state, *latest)
    elif latest is not None and commands < latest[0]:
        raise JournalCorrupt(f"the latest snapshot is at command {latest[0]}, but the journal ends at {commands}")
    return ReplayReport(commands, events, state_hash(state), None if latest is None else latest[0])


def audit_journal(journal: Journal) -> AuditReport:
    """Replay command by command, checking each as the module docstring says; JournalCorrupt names the
    first command that breaks."""
    hashes = journal.snapshot_hashes()
    journal.check_snapshot_texts()
    state = State(journal.profile)
    commands = events = checked = 0
    for entry in journal.history():
        decided = _decide_again(state, entry)
        evolve_entry(state, entry)
        try:
            audit(state)
        except InvariantViolation as exc:
            raise JournalCorrupt(f"after command {entry.seq} ({entry.type}): {exc}") from exc
        _same_outcome(entry, decided)
        if entry.seq in hashes:
            _check_snapshot(state, entry.seq, hashes[entry.seq])
            checked += 1
        commands, events = entry.seq, events + _event_count(entry)
    if checked != len(hashes):
        raise JournalCorrupt(f"{len(hashes) - checked} snapshot(s) stand after the last command {commands}")
    return AuditReport(commands, events, state_hash(state), checked, audit(state))


def _check_snapshot(state: State, seq: int, digest: str) -> None:
    if state_hash(state) != digest:
        raise JournalCorrupt(
            f"the state replayed to command {seq} differs from the snapshot there "
            f"(replayed {state_hash(state)[:16]}..., snapshot {digest[:16]}...)"
        )


def _event_count(entry: Entry) -> int:
    return 0 if isinstance(entry.outcome, Rejection) else len(entry.outcome)


def _decide_again(state: State, entry: Entry):
    try:
        return decide(state, parse_command(entry.command, state.profile))
    except InputError as exc:
        raise JournalCorrupt(f"command {entry.seq}: the stored command no longer parses: {exc}") from exc


def _same_outcome(entry: Entry, decided) -> None:
    """The stored outcome against the one decided again, naming the first difference."""
    where = f"command {entry.seq} ({entry.type})"
    if isinstance(entry.outcome, Rejection) or isinstance(decided, Rejection):
        if entry.outcome != decided:
            raise JournalCorrupt(
                f"{where}: the journal holds {_brief(entry.outcome)}; the engine decides {_brief(decided)}"
            )
        return
    stored, again = [e.to_json() for e in entry.outcome], [e.to_json() for e in decided]
    for i, (s, a) in enumerate(zip(stored, again, strict=False)):
        if s != a:
            key = next((k for k in sorted(set(s) | set(a)) if s.get(k) != a.get(k)), "type")
            raise JournalCorrupt(
                f"{where}: event {i} ({s.get('type')}) has {key} {s.get(key)!r} in the journal; "
                f"the engine decides {a.get(key)!r}"
            )
    if len(stored) != len(again):
        raise JournalCorrupt(f"{where}: the journal holds {len(stored)} events; the engine decides {len(again)}")


def _brief(outcome) -> str:
    return f"rejection {outcome.code}" if isinstance(outcome, Rejection) else f"{len(outcome)} events"
