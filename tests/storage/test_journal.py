"""The durable journal, the same tests on SQLite and on PostgreSQL: what is acknowledged is there after
a reopen, a client id is applied once, a failed transaction leaves nothing behind, snapshots every N."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_workload import ACCOUNTS, profile_text, workload

from margin_engine.engine import Engine, Rejection
from margin_engine.errors import InputError
from margin_engine.margin.profile import parse_profile
from margin_engine.storage import (
    BATCH_MAX,
    ClientIdReused,
    Journal,
    JournalConflict,
    JournalCorrupt,
    JournalExists,
    JournalMissing,
    JournalWriteFailed,
    state_hash,
)
from margin_engine.storage.schema import commands, events, snapshots

PROFILE_TEXT = profile_text("batch")
DEPOSIT = {"type": "deposit", "account": "a0", "amount": "100"}


def fresh(db_url: str, snapshot_every: int = 1000) -> tuple[Journal, Engine]:
    journal = Journal.create(db_url, PROFILE_TEXT, snapshot_every=snapshot_every)
    return journal, journal.load()


def submit_all(journal: Journal, engine: Engine, cmds: list[dict]) -> list:
    out = []
    for cmd in cmds:
        try:
            out.append(journal.submit(engine, cmd))
        except InputError:
            pass
    return out


def rows(journal: Journal, table: sa.Table) -> list:
    with journal.db.connect() as conn:
        return conn.execute(sa.select(table)).all()


def test_what_was_submitted_is_there_after_a_reopen(db_url):
    journal, engine = fresh(db_url, snapshot_every=25)
    receipts = submit_all(journal, engine, workload(random.Random(3), 60))
    assert [r.seq for r in receipts] == list(range(1, len(receipts) + 1))
    assert any(not r.accepted for r in receipts)  # rejections are journaled as well
    # the same commands on a plain engine give the same outcomes
    plain = Engine(parse_profile(PROFILE_TEXT))
    for r, cmd in zip(receipts, _accepted_input(workload(random.Random(3), 60)), strict=True):
        outcome = plain.submit(cmd)
        assert (outcome if isinstance(outcome, Rejection) else tuple(outcome)) == r.outcome
    journal.close()
    with Journal.open(db_url) as again:
        loaded = again.load()
    assert state_hash(loaded.state) == state_hash(engine.state) == state_hash(plain.state)
    assert loaded.state.accounts == engine.state.accounts and loaded.state.oracles == engine.state.oracles


def _accepted_input(cmds: list[dict]) -> list[dict]:
    profile = parse_profile(PROFILE_TEXT)
    from margin_engine.engine import parse_command

    out = []
    for cmd in cmds:
        try:
            parse_command(cmd, profile)
        except InputError:
            continue
        out.append(cmd)
    return out


def test_snapshots_every_n_commands_and_load_starts_from_the_latest(db_url):
    journal, engine = fresh(db_url, snapshot_every=10)
    receipts = submit_all(journal, engine, workload(random.Random(5), 40))
    n = len(receipts)
    assert [r.command_seq for r in rows(journal, snapshots)] == list(range(10, n + 1, 10))
    assert state_hash(journal.load().state) == state_hash(engine.state)
    # load evolves only the events after the latest snapshot, but checks the chain over all of them:
    # removing the earlier events is found
    with journal.db.begin() as conn:
        conn.execute(sa.delete(events).where(events.c.command_seq <= n // 10 * 10))
    with pytest.raises(JournalCorrupt, match="hash chain breaks"):
        journal.load()
    journal.close()


def test_a_batch_is_one_transaction_with_the_same_outcomes_as_one_by_one(db_url, tmp_path):
    cmds = workload(random.Random(11), 50)
    one, one_engine = fresh(f"sqlite:///{tmp_path / 'one.db'}", snapshot_every=7)
    singles = submit_all(one, one_engine, cmds)
    many, many_engine = fresh(db_url, snapshot_every=7)
    batches = []
    for start in range(0, len(cmds), 16):
        results = many.submit_batch(many_engine, [(c, None) for c in cmds[start : start + 16]])
        batches.append([r for r in results if not isinstance(r, InputError)])
    assert [r for batch in batches for r in batch] == singles
    assert state_hash(many_engine.state) == state_hash(one_engine.state)
    # a snapshot is written when a transaction crosses a multiple of 7, at the transaction's last command
    crossing = [b[-1].seq for b in batches if b and b[-1].seq // 7 > (b[0].seq - 1) // 7]
    assert [s.command_seq for s in rows(many, snapshots)] == crossing and len(crossing) >= 3
    with Journal.open(db_url) as again:
        assert state_hash(again.load().state) == state_hash(one_engine.state)
    one.close()
    many.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(rng=st.randoms(use_true_random=False), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_group_commits_of_any_size_decide_as_a_plain_engine_does(tmp_path_factory, rng, sizes):
    """Each command of a batch is decided on a scratch state holding the ones before it: the outcomes and
    the state must be those of a plain in-memory engine fed one command at a time (the simple twin)."""
    cmds = workload(rng, 60)
    url = f"sqlite:///{tmp_path_factory.mktemp('batch') / 'j.db'}"
    journal = Journal.create(url, PROFILE_TEXT, snapshot_every=9, synchronous="NORMAL")
    engine = journal.load()
    twin = Engine(journal.profile)
    start = 0
    for size in sizes * 10:
        batch = cmds[start : start + size]
        for cmd, result in zip(batch, journal.submit_batch(engine, [(c, None) for c in batch]), strict=True):
            try:
                outcome = twin.submit(cmd)
            except InputError:
                assert isinstance(result, InputError)
                continue
            assert result.outcome == (outcome if isinstance(outcome, Rejection) else tuple(outcome))
        start += size
        if start >= len(cmds):
            break
    assert state_hash(engine.state) == state_hash(twin.state)
    assert state_hash(journal.load().state) == state_hash(twin.state)
    journal.close()


def test_a_client_id_is_applied_once_and_answered_the_same(db_url):
    journal, engine = fresh(db_url)
    submit_all(journal, engine, workload(random.Random(2), 0))
    before = engine.state.ledger.balance("user:a0", "USDC")
    first = journal.submit(engine, DEPOSIT, client_id="dep-1")
    second = journal.submit(engine, dict(reversed(list(DEPOSIT.items()))), client_id="dep-1")  # same command
    assert first == second and first.accepted
    assert engine.state.ledger.balance("user:a0", "USDC") == before + 100_000_000  # once
    # a rejection is stored for its client id and answered again, even after the state changed
    too_much = {"type": "withdraw", "account": "a1", "amount": "99999999"}
    refused = journal.submit(engine, too_much, client_id="wd-1")
    assert refused.outcome.code == "insufficient_balance"
    journal.submit(engine, {"type": "deposit", "account": "a1", "amount": "999999999"})
    assert journal.submit(engine, too_much, client_id="wd-1") == refused
    # the same id for another command is refused, and nothing is written
    count = len(rows(journal, commands))
    with pytest.raises(ClientIdReused, match="dep-1.*another command"):
        journal.submit(engine, {**DEPOSIT, "amount": "101"}, client_id="dep-1")
    assert len(rows(journal, commands)) == count
    # and across a reopen, the answer is the same again
    journal.close()
    with Journal.open(db_url) as again:
        assert again.submit(again.load(), DEPOSIT, client_id="dep-1") == first
        assert len(rows(again, commands)) == count


def test_client_ids_within_one_batch(db_url):
    journal, engine = fresh(db_url)
    submit_all(journal, engine, workload(random.Random(2), 0))
    other = {**DEPOSIT, "amount": "5"}
    results = journal.submit_batch(engine, [(DEPOSIT, "x"), (DEPOSIT, "x"), (other, "x"), ({"type": "nope"}, "y")])
    assert results[0] == results[1] and results[0].seq == len(rows(journal, commands))
    assert isinstance(results[2], ClientIdReused) and isinstance(results[3], InputError)
    with pytest.raises(InputError, match="client_id"):
        journal.submit(engine, DEPOSIT, client_id="has space")
    with pytest.raises(InputError, match="items"):
        journal.submit_batch(engine, [(DEPOSIT, None)] * (BATCH_MAX + 1))
    journal.close()


def _fail_on(prefix: str):
    """A database error at the statement that starts with `prefix`, or at the commit."""

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(prefix):
            raise sa.exc.OperationalError(statement, parameters, OSError(28, "No space left on device"))

    def on_commit(conn):
        raise sa.exc.OperationalError("COMMIT", None, OSError(28, "No space left on device"))

    return ("commit", on_commit) if prefix == "COMMIT" else ("before_cursor_execute", on_statement)


@pytest.mark.parametrize("fail_on", ["INSERT INTO commands", "INSERT INTO events", "INSERT INTO snapshots", "COMMIT"])
def test_a_transaction_that_fails_midway_leaves_nothing(db_url, fail_on):
    journal, engine = fresh(db_url, snapshot_every=3)
    submit_all(journal, engine, workload(random.Random(4), 0)[:5])  # 5 commands: the next batch crosses 6
    before = (state_hash(engine.state), len(rows(journal, commands)), len(engine.journal))

    event, listener = _fail_on(fail_on)
    sa.event.listen(journal.db, event, listener)
    with pytest.raises(JournalWriteFailed, match="nothing was applied"):
        journal.submit_batch(engine, [(DEPOSIT, "d1"), (DEPOSIT, "d2")])
    sa.event.remove(journal.db, event, listener)
    assert (state_hash(engine.state), len(rows(journal, commands)), len(engine.journal)) == before
    assert not any(r.command_seq > 5 for r in rows(journal, events))
    # the retry is applied once, with the sequence going on where it was
    (r1, r2) = journal.submit_batch(engine, [(DEPOSIT, "d1"), (DEPOSIT, "d2")])
    assert (r1.seq, r2.seq) == (6, 7)
    assert [s.command_seq for s in rows(journal, snapshots)] == [3, 7]
    journal.close()
    with Journal.open(db_url) as again:
        assert state_hash(again.load().state) == state_hash(engine.state)


def test_bad_input_writes_nothing(db_url):
    journal, engine = fresh(db_url)
    with pytest.raises(InputError, match="amount"):
        journal.submit(engine, {"type": "deposit", "account": "a0", "amount": "-1"})
    with pytest.raises(InputError, match="command"):
        journal.submit(engine, {"type": "set_market", "underlying": "BTC", "index": float("nan"), "vol": 0.6})
    assert rows(journal, commands) == []
    with pytest.raises(InputError, match="engine"):
        journal.submit(Engine(journal.profile), DEPOSIT)
    journal.close()


def test_a_second_writer_conflicts_instead_of_interleaving(db_url):
    journal, engine = fresh(db_url)
    submit_all(journal, engine, workload(random.Random(2), 0))
    with Journal.open(db_url) as other:
        other_engine = other.load()
        journal.submit(engine, DEPOSIT)
        before = state_hash(other_engine.state)
        with pytest.raises(JournalConflict):
            other.submit(other_engine, DEPOSIT)
        assert state_hash(other_engine.state) == before
        other_engine = other.load()  # caught up: now it may write
        assert other.submit(other_engine, DEPOSIT).seq == len(rows(other, commands))
    journal.close()


def test_create_and_open_say_what_is_wrong(db_url, tmp_path):
    with Journal.create(db_url, PROFILE_TEXT):
        pass
    with pytest.raises(JournalExists, match="already holds a journal"):
        Journal.create(db_url, PROFILE_TEXT)
    with pytest.raises(JournalMissing, match="no journal"):
        Journal.open(f"sqlite:///{tmp_path / 'nothing.db'}")
    assert not (tmp_path / "nothing.db").exists()  # opening does not create
    with pytest.raises(InputError, match="profile"):
        Journal.create(f"sqlite:///{tmp_path / 'bad.db'}", "name = 1")
    with pytest.raises(InputError, match="snapshot_every"):
        Journal.open(db_url, snapshot_every=0)
    with pytest.raises(InputError, match="in-memory"):
        Journal.create("sqlite://", PROFILE_TEXT)


def test_a_tampered_snapshot_or_a_missing_command_stops_the_load(db_url):
    journal, engine = fresh(db_url, snapshot_every=4)
    submit_all(journal, engine, workload(random.Random(6), 2)[:9])
    with journal.db.begin() as conn:
        text = conn.execute(sa.select(snapshots.c.state).where(snapshots.c.command_seq == 8)).scalar_one()
        conn.execute(sa.update(snapshots).where(snapshots.c.command_seq == 8).values(state=text.replace("a0", "b0", 1)))
    with pytest.raises(JournalCorrupt, match="snapshot at command 8"):
        journal.load()
    with journal.db.begin() as conn:
        conn.execute(sa.update(snapshots).where(snapshots.c.command_seq == 8).values(state=text))
        conn.execute(sa.delete(events).where(events.c.command_seq == 9))
        conn.execute(sa.delete(commands).where(commands.c.seq == 9))
        conn.execute(sa.delete(events).where(events.c.command_seq == 3))
        conn.execute(sa.delete(commands).where(commands.c.seq == 3))
    with pytest.raises(JournalCorrupt, match="missing"):
        journal.load()
    journal.close()


def test_every_account_of_the_workload_is_journaled(db_url):
    """A smoke test of the fixture itself: both back ends hold what was written."""
    journal, engine = fresh(db_url)
    submit_all(journal, engine, workload(random.Random(0), 0))
    assert set(ACCOUNTS) <= set(engine.state.accounts)
    assert {r.type for r in rows(journal, commands)} >= {"open_account", "deposit", "set_market"}
    journal.close()
