"""The durable journal: every command with its outcome, its events, and periodic snapshots, in SQL.

Functional core, imperative shell. The engine decides a command's events on a scratch copy of its
state (`decide` writes nothing); the journal writes the command, its events and any snapshot due in
ONE transaction, and only after the commit evolves the in-memory engine with those events. A
transaction that fails leaves the engine exactly as it was, so the caller may retry (with the same
client id, a retry is applied at most once). Commit first, apply second: the engine never holds a
change the database lacks.

One writer per journal: sequence numbers are primary keys, so a second writer's transaction fails
(`JournalConflict`) instead of interleaving. SQLite runs in WAL mode with `synchronous=FULL` by
default, so an acknowledged command survives a process kill and a power cut; see docs/storage.md.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from margin_engine.engine import (
    Command,
    Engine,
    Event,
    Rejection,
    State,
    audit,
    audit_events,
    decide,
    event_from_json,
    evolve,
    parse_command,
)
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.margin.profile import Profile, parse_profile
from margin_engine.storage import schema
from margin_engine.storage.chain import Head, HeadFile, genesis, link, link_row
from margin_engine.storage.snapshot import (
    SnapshotFormatError,
    canonical_json,
    state_from_json,
    state_to_json,
    text_hash,
)

SNAPSHOT_EVERY = 1000  # commands between snapshots: a load replays at most about this many commands' events
BATCH_MAX = 1000  # commands per group commit
PAGE = 1000  # commands read per query when walking the history
CLIENT_ID_RE = re.compile(rf"^[\x21-\x7e]{{1,{schema.CLIENT_ID_LENGTH_MAX}}}$")  # printable ASCII, no space
Synchronous = Literal["FULL", "NORMAL"]
LOG = logging.getLogger("margin_engine.journal")


class JournalExists(InputError):
    """`create` on a database that already holds a journal."""


class JournalMissing(InputError):
    """`open` on a database (or a path) that holds no journal."""


class ClientIdReused(InputError):
    """A client id already taken by a different command: the second command is not applied."""


class JournalCorrupt(InvariantViolation):
    """What the database holds contradicts itself, its snapshots or the engine: stop and investigate."""


class CommandFailed(InvariantViolation):
    """An unexpected error while parsing or deciding one command: a bug, not bad input. That command
    alone is refused and nothing of it is journaled; the others of its batch go on."""

    def __init__(self, command: Any, exc: BaseException):
        self.command = command
        self.cause = exc
        super().__init__(f"{type(exc).__name__} while handling a command: {exc}"[:500])


class EngineDiverged(JournalCorrupt):
    """Committed events did not apply to the in-memory engine (a bug): the engine is no longer the
    journal's; load it again from the journal before the next command."""


class JournalWriteFailed(Exception):
    """The transaction did not commit: nothing was applied to the engine, and a retry is safe.

    When the commit's fate is unknown (the connection died during it), a commit that did happen makes
    the next write fail with `JournalConflict`: load again, then retry with the same client id.
    """


class JournalConflict(JournalWriteFailed):
    """Another writer appended to this journal, or took a client id, first: load again before writing."""


@dataclass(frozen=True)
class Receipt:
    """What a command got: its sequence number, and its events or its rejection. A client id seen
    before gets back the receipt it got the first time, equal in every field."""

    seq: int
    client_id: str | None
    outcome: tuple[Event, ...] | Rejection

    @property
    def accepted(self) -> bool:
        return not isinstance(self.outcome, Rejection)

    def to_json(self, event_json: Callable[[Event], dict[str, Any]] = Event.to_json) -> dict[str, Any]:
        """`event_json` renders each event (the service passes the readers' view)."""
        out: dict[str, Any] = {"seq": self.seq, "client_id": self.client_id}
        if isinstance(self.outcome, Rejection):
            out["rejection"] = self.outcome.to_json()
        else:
            out["events"] = [event_json(e) for e in self.outcome]
        return out


@dataclass(frozen=True)
class Entry:
    """One journaled command as stored, with its events: what replay and audit walk through."""

    seq: int
    client_id: str | None
    type: str
    command: dict[str, Any]
    outcome: tuple[Event, ...] | Rejection


@dataclass(frozen=True)
class _Prepared:
    """A command that parsed: its canonical text is what is stored, and what was parsed."""

    text: str
    command: Command
    type: str
    client_id: str | None


def database_url(db: str) -> str:
    """A database URL as given (`postgresql+psycopg://...`), or a path to an SQLite file made into one."""
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


class Journal:
    """A journal in a database. `Journal.create` or `Journal.open`, then `load()` the engine and pass
    that engine to `submit` / `submit_batch`, which journal each command before applying it."""

    def __init__(self, db: sa.Engine, profile_text: str, snapshot_every: int):
        self.db = db
        self.profile_text = profile_text
        self.profile = parse_profile(profile_text, source="the journal's profile")
        self.snapshot_every = snapshot_every
        self._engine: Engine | None = None
        self._last_seq = 0
        self._chain = genesis(profile_text)
        self.head_file = _head_file(db)

    @classmethod
    def create(
        cls,
        url: str,
        profile_text: str,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        synchronous: Synchronous = "FULL",
    ) -> Journal:
        """Make the tables (or use those `alembic upgrade head` made) and store the profile's TOML, once."""
        profile = parse_profile(profile_text)  # a bad profile fails before anything is written
        _check_snapshot_every(snapshot_every)
        db = _connect(url, synchronous, must_exist=False)
        head_file = _head_file(db)
        try:
            with _writing(db) as conn, conn.begin():
                version = _schema_version(conn)
                if version not in (None, schema.SCHEMA_REVISION):
                    raise InputError(
                        "db", f"{_shown(url)} is at schema revision {version}, not {schema.SCHEMA_REVISION}"
                    )
                schema.metadata.create_all(conn)
                if version is None:
                    schema.alembic_version.create(conn, checkfirst=True)
                    conn.execute(schema.alembic_version.insert().values(version_num=schema.SCHEMA_REVISION))
                if conn.execute(sa.select(schema.profile.c.name)).first() is not None:
                    raise JournalExists("db", f"{_shown(url)} already holds a journal; open it instead")
                if head_file is not None and head_file.read() is not None:
                    raise JournalExists(
                        "db",
                        f"{head_file.path} says a journal was here; restore its database, "
                        "or remove that file to start a new journal",
                    )
                conn.execute(schema.profile.insert().values(id=1, name=profile.name, toml=profile_text))
                conn.execute(schema.journal_head.insert().values(id=1, seq=0, chain=genesis(profile_text)))
        except sa.exc.SQLAlchemyError as exc:
            db.dispose()
            raise JournalWriteFailed(f"cannot create a journal in {_shown(url)}: {exc}") from exc
        except BaseException:
            db.dispose()
            raise
        if head_file is not None:
            head_file.write(Head(0, genesis(profile_text)))
        return cls(db, profile_text, snapshot_every)

    @classmethod
    def open(cls, url: str, *, snapshot_every: int = SNAPSHOT_EVERY, synchronous: Synchronous = "FULL") -> Journal:
        """An existing journal, at the schema revision this code writes."""
        _check_snapshot_every(snapshot_every)
        db = _connect(url, synchronous, must_exist=True)
        try:
            with db.connect() as conn:
                version = _schema_version(conn)
                if version is None:
                    _missing_but_recorded(db)
                    raise JournalMissing(
                        "db", f"{_shown(url)} holds no journal; create one with `margin-engine journal init`"
                    )
                if version != schema.SCHEMA_REVISION:
                    raise InputError(
                        "db", f"{_shown(url)} is at schema revision {version}; this code needs {schema.SCHEMA_REVISION}"
                    )
                text = conn.execute(sa.select(schema.profile.c.toml)).scalar_one_or_none()
            if text is None:
                raise JournalMissing("db", f"{_shown(url)} has the tables but no profile; create the journal")
            return cls(db, text, snapshot_every)
        except sa.exc.SQLAlchemyError as exc:
            db.dispose()
            raise JournalCorrupt(f"cannot read {_shown(url)}: {_reason(exc)}") from None
        except BaseException:
            db.dispose()
            raise

    @property
    def last_seq(self) -> int:
        """The last command this journal committed or loaded."""
        return self._last_seq

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ reading

    def load(self) -> Engine:
        """The engine after the last committed command: the latest snapshot, then the events after it,
        audited. The whole hash chain is checked first, and the head row and side file against it.
        Its `journal` list starts empty: the history is in the database."""
        try:
            with self.db.connect() as conn:  # one read transaction: a consistent view
                last_seq = self._count(conn)
                row = conn.execute(
                    sa.select(schema.snapshots)
                    .where(schema.snapshots.c.command_seq <= last_seq)
                    .order_by(schema.snapshots.c.command_seq.desc())
                    .limit(1)
                ).first()
                if row is None:
                    state, from_seq = State(self.profile), 0
                else:
                    state, from_seq = self._restore(row.command_seq, row.state, row.state_hash), row.command_seq
                for command_row, texts in self._verified(conn, last_seq):
                    if command_row.seq > from_seq:
                        evolve_entry(state, _entry(command_row, texts))
        except sa.exc.SQLAlchemyError as exc:
            raise JournalCorrupt(f"cannot read the journal: {_reason(exc)}") from None
        try:
            audit(state)
        except InvariantViolation as exc:
            raise JournalCorrupt(f"the state loaded at command {last_seq} fails the audit: {exc}") from exc
        engine = Engine(self.profile)
        engine.state = state
        self._engine, self._last_seq = engine, last_seq
        return engine

    def history(self) -> Iterator[Entry]:
        """Every command from the first, in order, with its outcome and events, a page at a time; the
        hash chain, head row and side file are checked on the way (JournalCorrupt at the first break)."""
        try:
            with self.db.connect() as conn:
                last_seq = self._count(conn)
                for row, texts in self._verified(conn, last_seq):
                    yield _entry(row, texts)
        except sa.exc.SQLAlchemyError as exc:
            raise JournalCorrupt(f"cannot read the journal: {_reason(exc)}") from None

    @staticmethod
    def _count(conn: sa.Connection) -> int:
        last_seq, count = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(schema.commands.c.seq), 0), sa.func.count())
        ).one()
        if count != last_seq:
            raise JournalCorrupt(f"the journal holds {count} commands numbered up to {last_seq}: some are missing")
        return last_seq

    def _verified(self, conn: sa.Connection, last_seq: int) -> Iterator[tuple[Any, list[str]]]:
        """Every command row with its event texts, each link of the chain recomputed from the stored
        texts; at the end the head row and the side file must name the same end."""
        snapshots = {
            seq: (digest, chain)
            for seq, digest, chain in conn.execute(
                sa.select(schema.snapshots.c.command_seq, schema.snapshots.c.state_hash, schema.snapshots.c.chain)
            )
        }
        beyond = sorted(seq for seq in snapshots if not 1 <= seq <= last_seq)
        if beyond:
            raise JournalCorrupt(f"a snapshot stands at command {beyond[0]}, but the journal ends at {last_seq}")
        side = self.head_file.read() if self.head_file is not None else None
        if side is not None and side.seq < 0:
            raise JournalCorrupt(f"{self.head_file.path} does not read as a head file; restore it or remove it")
        if side is not None and side.seq > last_seq:
            raise JournalCorrupt(
                f"the journal ends at command {last_seq}, but {self.head_file.path.name} says {side.seq} were "
                "committed: commands were lost (the SQLite WAL file was lost, the database was replaced by an "
                "older copy, or rows were removed)"
            )
        chain = genesis(self.profile_text)
        side_chain = chain if side is not None and side.seq == 0 else None
        for row, texts in _rows(conn, 0, last_seq):
            snapshot = snapshots.get(row.seq)
            chain = link_row(chain, row, texts, None if snapshot is None else snapshot[0])
            if chain != row.chain:
                raise JournalCorrupt(
                    f"command {row.seq}: the hash chain breaks here (the command, its outcome, its events, "
                    "an earlier row or a snapshot's hash was changed after it was written)"
                )
            if snapshot is not None and snapshot[1] != chain:
                raise JournalCorrupt(f"snapshot at command {row.seq}: it names a chain head the journal never had")
            if side is not None and row.seq == side.seq:
                side_chain = chain
            yield row, texts
        head = conn.execute(sa.select(schema.journal_head)).first()
        if head is None:
            raise JournalCorrupt("the journal has no head row: it was not written by this code, or was damaged")
        if (head.seq, head.chain) != (last_seq, chain):
            raise JournalCorrupt(
                f"the journal ends at command {last_seq}, but its head row says {head.seq}: "
                "commands were removed or rewritten"
            )
        if side is not None and side_chain != side.chain:
            raise JournalCorrupt(
                f"{self.head_file.path.name} names a chain at command {side.seq} that the journal does not "
                "have: the database was rewritten or replaced"
            )
        self._chain = chain

    def snapshot_hashes(self) -> dict[int, str]:
        """Stored state hash by command seq, for every snapshot."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(schema.snapshots.c.command_seq, schema.snapshots.c.state_hash))
            return {seq: digest for seq, digest in rows}

    def check_snapshot_texts(self) -> int:
        """Every snapshot's text against its stored hash (the chain covers the hash, this the text);
        returns how many were checked."""
        checked = 0
        with self.db.connect() as conn:
            for seq, text, digest in conn.execute(
                sa.select(schema.snapshots.c.command_seq, schema.snapshots.c.state, schema.snapshots.c.state_hash)
            ):
                if text_hash(text) != digest:
                    raise JournalCorrupt(f"snapshot at command {seq}: its state text does not hash to its hash")
                checked += 1
        return checked

    def latest_snapshot(self) -> tuple[int, str] | None:
        """(command seq, state hash) of the latest snapshot, its text checked against its hash."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(schema.snapshots).order_by(schema.snapshots.c.command_seq.desc()).limit(1)
            ).first()
        if row is None:
            return None
        if text_hash(row.state) != row.state_hash:
            raise JournalCorrupt(f"snapshot at command {row.command_seq}: its state text does not hash to its hash")
        return row.command_seq, row.state_hash

    def _restore(self, seq: int, text: str, digest: str) -> State:
        """Paired check on reading back: the text hashes as stored, and restores to a state that encodes
        to the same text."""
        if text_hash(text) != digest:
            raise JournalCorrupt(f"snapshot at command {seq}: its state text does not hash to its hash")
        try:
            state = state_from_json(self.profile, json.loads(text))
        except (ValueError, SnapshotFormatError) as exc:
            raise JournalCorrupt(f"snapshot at command {seq} does not decode: {exc}") from exc
        if canonical_json(state_to_json(state)) != text:
            raise JournalCorrupt(f"snapshot at command {seq} does not restore to the state it encodes")
        return state

    # ------------------------------------------------------------------------------------ writing

    def submit(self, engine: Engine, command: Any, client_id: str | None = None) -> Receipt:
        """Parse, decide, journal (committed) and apply one command. Bad input raises InputError and
        writes nothing; a rejection is journaled too, so that its client id answers the same again."""
        (result,) = self.submit_batch(engine, [(command, client_id)])
        if isinstance(result, InputError | CommandFailed):
            raise result
        return result

    def submit_batch(
        self, engine: Engine, items: Sequence[tuple[Any, str | None]]
    ) -> list[Receipt | InputError | CommandFailed]:
        """Many (command, client id) in ONE transaction, a group commit: per item its receipt, the
        InputError that kept it out, or the CommandFailed of a bug in handling it (that command alone is
        left out). Each command is decided on the state the ones before it left."""
        if engine is not self._engine:
            raise InputError("engine", "not the engine this journal loaded: use the one journal.load() returned")
        if len(items) > BATCH_MAX:
            raise InputError("items", f"at most {BATCH_MAX} commands per batch, got {len(items)}")
        prepared = [_prepare(obj, client_id, self.profile) for obj, client_id in items]
        try:
            with _writing(self.db) as conn, conn.begin():
                taken = _stored_receipts(conn, {p.client_id for p in prepared if isinstance(p, _Prepared)} - {None})
                results, receipts, texts = _decide_isolated(engine.state, prepared, taken, self._last_seq)
                chain = self._write(conn, engine.state, receipts, texts) if receipts else self._chain
        except sa.exc.IntegrityError as exc:
            raise JournalConflict(f"another writer got there first ({exc.orig}); load the journal again") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise JournalWriteFailed(f"the journal transaction failed, nothing was applied: {exc}") from exc
        if receipts:
            self._last_seq, self._chain = receipts[-1].seq, chain
            self._write_head_file()
        try:
            for receipt in receipts:  # committed: now, and only now, the engine
                if receipt.accepted:
                    for event in receipt.outcome:
                        evolve(engine.state, event)
        except Exception as exc:
            self._engine = None  # half applied: only a fresh load() may write again
            raise EngineDiverged(f"committed events do not apply to the engine ({type(exc).__name__}: {exc})") from exc
        return results

    def _write_head_file(self) -> None:
        """After the commit: a failure here loses nothing (the file may lag, never lead), so it is logged."""
        if self.head_file is None:
            return
        try:
            self.head_file.write(Head(self._last_seq, self._chain))
        except OSError as exc:
            LOG.warning("cannot write %s: %s", self.head_file.path, exc)

    def _write(self, conn: sa.Connection, state: State, receipts: list[Receipt], texts: list[_Prepared]) -> str:
        """The rows of one group commit, each linked into the chain; returns the new chain head."""
        now = datetime.now(UTC)  # for logs only: nothing the engine decides reads it
        rows = [_command_row(r, p, now) for r, p in zip(receipts, texts, strict=True)]
        events_by_seq = {
            r.seq: [canonical_json(e.to_json()) for e in r.outcome] for r in receipts if r.accepted and r.outcome
        }
        first, last = receipts[0].seq, receipts[-1].seq
        snapshot = None
        if last // self.snapshot_every > (first - 1) // self.snapshot_every:
            snapshot = _snapshot_row(state, receipts)
        chain = self._chain
        for row in rows:
            seq = row["seq"]
            digest = snapshot["state_hash"] if snapshot is not None and seq == last else None
            chain = link(
                chain,
                seq,
                row["client_id"],
                row["type"],
                row["command"],
                row["accepted"],
                row["outcome"],
                events_by_seq.get(seq, []),
                digest,
            )
            row["chain"] = chain
        conn.execute(schema.commands.insert(), rows)
        event_rows = [
            {"command_seq": seq, "idx": i, "type": json.loads(text)["type"], "event": text}
            for seq, texts_ in events_by_seq.items()
            for i, text in enumerate(texts_)
        ]
        if event_rows:
            conn.execute(schema.events.insert(), event_rows)
        if snapshot is not None:
            conn.execute(schema.snapshots.insert().values(**snapshot, chain=chain))
        updated = conn.execute(
            schema.journal_head.update()
            .where(schema.journal_head.c.seq == self._last_seq)
            .values(seq=last, chain=chain)
        )
        if updated.rowcount != 1:
            raise JournalConflict(f"the journal's head moved past command {self._last_seq}: another writer?")
        return chain


def _rows(conn: sa.Connection, after_seq: int, last_seq: int) -> Iterator[tuple[Any, list[str]]]:
    """Command rows after `after_seq` up to `last_seq`, each with its event texts, a page at a time."""
    c, e = schema.commands, schema.events
    for low in range(after_seq, last_seq, PAGE):
        high = min(low + PAGE, last_seq)
        rows = conn.execute(sa.select(c).where(c.c.seq > low, c.c.seq <= high).order_by(c.c.seq)).all()
        found = conn.execute(
            sa.select(e.c.command_seq, e.c.event)
            .where(e.c.command_seq > low, e.c.command_seq <= high)
            .order_by(e.c.command_seq, e.c.idx)
        ).all()
        by_seq: dict[int, list[str]] = {}
        for seq, text in found:
            by_seq.setdefault(seq, []).append(text)
        for expected, row in enumerate(rows, start=low + 1):
            if row.seq != expected:
                raise JournalCorrupt(f"command {expected} is missing from the journal")
            yield row, by_seq.pop(row.seq, [])
        if len(rows) != high - low or by_seq:
            raise JournalCorrupt(f"commands {low + 1}..{high}: missing commands, or events of no command")


def _snapshot_row(state: State, receipts: list[Receipt]) -> dict[str, Any]:
    """The state after the transaction, on a deep copy (the engine's own state waits for the commit),
    audited before it is written: verify before writing, and again on reading back."""
    after = copy.deepcopy(state, {id(state.profile): state.profile})
    for receipt in receipts:
        if receipt.accepted:
            for event in receipt.outcome:
                evolve(after, event)
    audit(after)
    text = canonical_json(state_to_json(after))
    return {"command_seq": receipts[-1].seq, "state": text, "state_hash": text_hash(text)}


def _decide_isolated(
    state: State, prepared: list[_Prepared | InputError], taken: dict[str, tuple[str, Receipt]], last_seq: int
) -> tuple[list[Receipt | InputError], list[Receipt], list[_Prepared]]:
    """`_decide_all`, with a command that raises unexpectedly taken out (a CommandFailed in its place,
    logged with the command) and the others decided again from the start on a fresh scratch state,
    so that nothing it half-did reaches the commands after it."""
    items = list(prepared)
    while True:
        try:
            return _decide_all(state, items, dict(taken), last_seq)
        except _Failed as failed:
            bad = items[failed.index]
            LOG.error("command failed unexpectedly: %s; command %s", failed.error, getattr(bad, "text", bad))
            items[failed.index] = failed.error


class _Failed(Exception):
    def __init__(self, index: int, error: CommandFailed):
        self.index, self.error = index, error


def _decide_all(
    state: State, prepared: list[_Prepared | InputError], taken: dict[str, tuple[str, Receipt]], last_seq: int
) -> tuple[list[Receipt | InputError], list[Receipt], list[_Prepared]]:
    """Results per item, and the new receipts to write with their commands. Decided on one scratch
    state, each command after the ones before it; a client id already taken answers as it did."""
    scratch = state.scratch()
    results: list[Receipt | InputError] = []
    receipts: list[Receipt] = []
    written: list[_Prepared] = []
    seq = last_seq
    for index, item in enumerate(prepared):
        if isinstance(item, InputError | CommandFailed):
            results.append(item)
            continue
        earlier = taken.get(item.client_id) if item.client_id is not None else None
        if earlier is not None:
            text, receipt = earlier
            same = text == item.text
            results.append(
                receipt
                if same
                else ClientIdReused("client_id", f"{item.client_id!r} was used for another command (seq {receipt.seq})")
            )
            continue
        try:
            outcome = decide(scratch, item.command)
            if not isinstance(outcome, Rejection):
                for event in outcome:
                    evolve(scratch, event)
                outcome = tuple(outcome)
                audit_events(scratch, outcome)  # conservation of this command, before it is journaled
                for event in outcome:  # what will be stored must encode: found now, not at the commit
                    canonical_json(event.to_json())
        except Exception as exc:
            raise _Failed(index, CommandFailed(item.text, exc)) from exc
        seq += 1
        receipt = Receipt(seq, item.client_id, outcome)
        if item.client_id is not None:
            taken[item.client_id] = (item.text, receipt)
        results.append(receipt)
        receipts.append(receipt)
        written.append(item)
    return results, receipts, written


def _prepare(obj: Any, client_id: Any, profile: Profile) -> _Prepared | InputError | CommandFailed:
    """The command as it will be stored, parsed from that stored text, so that a replay parses the same."""
    try:
        if client_id is not None and (not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id)):
            raise InputError(
                "client_id",
                f"1-{schema.CLIENT_ID_LENGTH_MAX} printable ASCII characters without spaces, got {client_id!r}",
            )
        text = _command_text(obj)
        plain = json.loads(text)
        return _Prepared(text, parse_command(plain, profile), plain["type"], client_id)
    except InputError as exc:
        return exc
    except (RecursionError, MemoryError) as exc:  # JSON nested too deep, or too big, to read back
        return InputError("command", f"cannot be read: {type(exc).__name__}")
    except Exception as exc:  # parsing raised what it should have named: a bug, this command alone
        LOG.error("command failed to parse unexpectedly: %r", exc)
        return CommandFailed(obj, exc)


def _command_text(obj: Any) -> str:
    """Canonical JSON of a command object; Decimals (from parse_float=Decimal) become decimal strings,
    which every command field reads exactly as it reads the Decimal."""

    def plain(value: Any) -> str:
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=plain
        )
    except (TypeError, ValueError) as exc:
        raise InputError("command", f"not a JSON object: {exc}") from None


def _command_row(receipt: Receipt, prepared: _Prepared, now: datetime) -> dict[str, Any]:
    outcome = (
        {"rejection": asdict(receipt.outcome)}
        if isinstance(receipt.outcome, Rejection)
        else {"events": len(receipt.outcome)}
    )
    return {
        "seq": receipt.seq,
        "client_id": receipt.client_id,
        "type": prepared.type,
        "command": prepared.text,
        "accepted": receipt.accepted,
        "outcome": canonical_json(outcome),
        "recorded_at": now,
    }


def _entry(row: Any, event_texts: list[str]) -> Entry:
    """A stored command back as values; anything that does not parse, or does not add up, is corruption."""
    try:
        outcome_json = json.loads(row.outcome)
        events = tuple(event_from_json(json.loads(text)) for text in event_texts)
        if "rejection" in outcome_json:
            outcome: tuple[Event, ...] | Rejection = Rejection(**outcome_json["rejection"])
            expected = 0
        else:
            outcome, expected = events, outcome_json["events"]
        command = json.loads(row.command)
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalCorrupt(f"command {row.seq}: stored JSON does not read back ({exc!r})") from exc
    if len(events) != expected or bool(row.accepted) == isinstance(outcome, Rejection):
        raise JournalCorrupt(f"command {row.seq}: {len(events)} events stored for outcome {row.outcome}")
    return Entry(row.seq, row.client_id, row.type, command, outcome)


def evolve_entry(state: State, entry: Entry) -> None:
    """Apply a journaled command's events; events that do not apply are corruption, named by command."""
    if isinstance(entry.outcome, Rejection):
        return
    try:
        for event in entry.outcome:
            evolve(state, event)
    except (InvariantViolation, InputError, KeyError) as exc:
        raise JournalCorrupt(f"command {entry.seq} ({entry.type}): its events do not apply: {exc}") from exc


def _stored_receipts(conn: sa.Connection, client_ids: set[str]) -> dict[str, tuple[str, Receipt]]:
    """Client id -> (stored command text, the receipt it got) for those ids already journaled."""
    if not client_ids:
        return {}
    c, e = schema.commands, schema.events
    rows = conn.execute(sa.select(c).where(c.c.client_id.in_(sorted(client_ids)))).all()
    seqs = [row.seq for row in rows if row.accepted]
    texts: dict[int, list[str]] = {}
    if seqs:
        found = conn.execute(
            sa.select(e.c.command_seq, e.c.event).where(e.c.command_seq.in_(seqs)).order_by(e.c.command_seq, e.c.idx)
        )
        for seq, text in found:
            texts.setdefault(seq, []).append(text)
    out = {}
    for row in rows:
        entry = _entry(row, texts.get(row.seq, []))
        out[row.client_id] = (row.command, Receipt(entry.seq, entry.client_id, entry.outcome))
    return out


def _head_file(db: sa.Engine) -> HeadFile | None:
    return HeadFile(db.url.database) if db.url.get_backend_name() == "sqlite" and db.url.database else None


def _missing_but_recorded(db: sa.Engine) -> None:
    """A database without a journal where the side file says one was: it was emptied or replaced."""
    head_file = _head_file(db)
    side = head_file.read() if head_file is not None else None
    if side is not None:
        raise JournalCorrupt(
            f"the database holds no journal, but {head_file.path.name} says one with {max(side.seq, 0)} commands "
            "was here: the file was emptied or replaced, or its WAL file lost; restore it from a backup"
        )


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's one line (`database disk image is malformed`), not SQLAlchemy's SQL and links."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _check_snapshot_every(snapshot_every: int) -> None:
    if not isinstance(snapshot_every, int) or isinstance(snapshot_every, bool) or snapshot_every < 1:
        raise InputError("snapshot_every", f"a whole number of commands >= 1, got {snapshot_every!r}")


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _schema_version(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(schema.alembic_version.name):
        return None
    return conn.execute(sa.select(schema.alembic_version.c.version_num)).scalar_one_or_none()


def _writing(db: sa.Engine) -> sa.Connection:
    """A connection whose transactions take the write lock at BEGIN (SQLite: BEGIN IMMEDIATE), so that
    the client-id look-up and the inserts after it see no other writer in between."""
    return db.connect().execution_options(journal_write=True)


def _connect(url: str, synchronous: Synchronous, must_exist: bool) -> sa.Engine:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise InputError("db", f"not a database URL or SQLite path: {url!r}") from None
    if synchronous not in ("FULL", "NORMAL"):
        raise InputError("synchronous", f"FULL or NORMAL, got {synchronous!r}")
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise InputError("db", "an in-memory SQLite database is not durable; give a file")
        if must_exist and not Path(path).is_file():
            side = HeadFile(path)
            if side.read() is not None:
                raise JournalCorrupt(f"{path} is gone, but {side.path.name} says a journal was there: restore it")
            raise JournalMissing("db", f"no journal at {path}; create one with `margin-engine journal init {path}`")
    try:
        db = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputError("db", f"no driver for {parsed.drivername} ({exc}); for PostgreSQL install psycopg") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(db, "connect", partial(_sqlite_pragmas, synchronous=synchronous))
        sa.event.listen(db, "begin", _sqlite_begin)
    return db


def _sqlite_pragmas(dbapi_connection, _record, synchronous: Synchronous) -> None:
    """WAL, the chosen fsync policy, foreign keys, and a wait for the lock instead of an error."""
    dbapi_connection.isolation_level = None  # the driver's own BEGINs off: _sqlite_begin issues them
    cursor = dbapi_connection.cursor()
    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise InputError("db", f"SQLite would not switch to WAL (journal_mode is {mode})")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("journal_write") else "BEGIN")
