"""`margin-engine journal init | submit | replay | audit`, through typer's runner, on both back ends:
what people and programs read, exit 2 for bad input, exit 3 for a journal that contradicts itself."""

from __future__ import annotations

import json
import random

import pytest
import sqlalchemy as sa
from journal_workload import profile_text, workload
from tamper import edit, rechain
from typer.testing import CliRunner

from margin_engine.cli.storage_cmd import journal_app
from margin_engine.storage import Journal
from margin_engine.storage.schema import commands, events, snapshots

runner = CliRunner()


def invoke(*args):
    return runner.invoke(journal_app, [str(a) for a in args])


@pytest.fixture
def journal_db(db_url, tmp_path):
    """A journal holding a seeded script of about 70 commands, submitted in two runs (two transactions)
    with a snapshot every 10 commands: one at the end of each run."""
    profile = tmp_path / "oracle.toml"
    profile.write_text(profile_text("dutch"))
    cmds = workload(random.Random(9), 30)
    receipts = []
    assert invoke("init", db_url, "--profile", profile).exit_code == 0
    for part, half in enumerate((cmds[:40], cmds[40:])):
        script = tmp_path / f"script{part}.jsonl"
        script.write_text("\n".join(json.dumps(c) for c in half) + "\n")
        result = invoke("submit", db_url, script, "--snapshot-every", 10, "--format", "json")
        assert result.exit_code == 0, result.output
        receipts += json.loads(result.stdout)
    return db_url, receipts


def test_init_submit_replay_audit(journal_db):
    db_url, receipts = journal_db
    assert [r["seq"] for r in receipts] == list(range(1, len(receipts) + 1))
    assert any("rejection" in r for r in receipts) and any(r.get("events") for r in receipts)
    replayed = invoke("replay", db_url, "--format", "json")
    assert replayed.exit_code == 0, replayed.output
    report = json.loads(replayed.stdout)
    assert report["commands"] == report["snapshot_seq"] == len(receipts)
    assert report["events"] == sum(len(r.get("events", [])) for r in receipts)
    audited = invoke("audit", db_url, "--format", "json")
    assert audited.exit_code == 0, audited.output
    totals = json.loads(audited.stdout)
    assert totals["state_hash"] == report["state_hash"] and totals["snapshots_checked"] == 2
    usdc = totals["conservation"]["USDC"]
    # the books balance: deposits - withdrawals = users + insurance + fees + settlement
    held = sum(float(usdc[k]) for k in ("users", "insurance", "fees", "settlement"))
    assert abs(float(usdc["deposits"]) - float(usdc["withdrawals"]) - held) < 1e-6
    people = invoke("audit", db_url)
    assert people.exit_code == 0 and "conservation held after every command" in people.stdout
    assert "USDC" in people.stdout and "BTC" in people.stdout
    assert "matches the snapshot at command" in invoke("replay", db_url).stdout


def test_submit_with_client_ids_twice_adds_nothing(db_url, tmp_path):
    script = tmp_path / "s.jsonl"
    script.write_text(
        '{"type": "open_account", "account": "a"}\n# a comment\n{"type": "deposit", "account": "a", "amount": 10.5}\n'
    )
    assert invoke("init", db_url).exit_code == 0
    first = invoke("submit", db_url, script, "--client-ids", "run1/", "--format", "json")
    second = invoke("submit", db_url, script, "--client-ids", "run1/", "--format", "json")
    assert first.exit_code == second.exit_code == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert [r["client_id"] for r in json.loads(first.stdout)] == ["run1/1", "run1/3"]
    table = invoke("submit", db_url, script, "--client-ids", "run1/")
    assert table.exit_code == 0 and "deposit" in table.stdout and "1 events" in table.stdout
    with Journal.open(db_url) as journal:
        engine = journal.load()
        assert engine.state.ledger.balance("user:a", "USDC") == 10_500_000  # the JSON number 10.5, once


def test_an_edited_event_amount_is_found_by_the_audit(journal_db):
    """A fee paid to the venue, edited and the chain rebuilt: the books still balance (both sides moved),
    the audit finds it by deciding the command again."""
    db_url, receipts = journal_db
    seq, idx, event = next(
        (r["seq"], i, e)
        for r in receipts
        for i, e in enumerate(r.get("events", []))
        if e["type"] == "transfer" and e["reason"] == "fee"
    )
    tampered = json.dumps({**event, "amount_units": event["amount_units"] + 1}, sort_keys=True, separators=(",", ":"))
    edit(db_url, sa.update(events).where(events.c.command_seq == seq, events.c.idx == idx).values(event=tampered))
    assert "hash chain breaks" in invoke("audit", db_url).stderr
    rechain(db_url)
    result = invoke("audit", db_url)
    assert result.exit_code == 3
    assert (
        f"command {seq} (trade): event {idx} (transfer) has amount_units {event['amount_units'] + 1}" in result.stderr
    )
    assert f"the engine decides {event['amount_units']}" in result.stderr


def test_an_edited_quote_breaks_conservation(journal_db):
    db_url, receipts = journal_db
    seq, idx, event = next(
        (r["seq"], i, e)
        for r in receipts
        for i, e in enumerate(r.get("events", []))
        if e["type"] == "position_changed" and e["quote_units"]
    )
    tampered = json.dumps({**event, "quote_units": event["quote_units"] + 7}, sort_keys=True, separators=(",", ":"))
    edit(db_url, sa.update(events).where(events.c.command_seq == seq, events.c.idx == idx).values(event=tampered))
    rechain(db_url)
    result = invoke("audit", db_url)
    assert result.exit_code == 3 and f"after command {seq} (trade): settlement" in result.stderr
    replay = invoke("replay", db_url)  # before the latest snapshot: the replay misses it too
    assert replay.exit_code == 3 and "differs from the snapshot" in replay.stderr


def test_an_edited_snapshot_fails_the_replay(journal_db):
    db_url, receipts = journal_db
    latest = len(receipts)
    edit(db_url, sa.update(snapshots).where(snapshots.c.command_seq == latest).values(state_hash="0" * 64))
    result = invoke("replay", db_url)
    assert result.exit_code == 3 and f"snapshot at command {latest}: its state text does not hash" in result.stderr
    rechain(db_url)
    result = invoke("replay", db_url)
    assert result.exit_code == 3 and f"snapshot at command {latest}" in result.stderr


def test_bad_input_exits_2_with_one_line_and_writes_nothing(db_url, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "open_account", "account": "a"}\n{"type": "deposit", "account": "a", "amount": "-1"}\n')
    assert invoke("init", db_url).exit_code == 0
    result = invoke("submit", db_url, bad)
    assert result.exit_code == 2 and result.stderr == "error: line 2: amount: must be > 0, got -1\n"
    with Journal.open(db_url) as journal, journal.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(commands)).scalar_one() == 0
    for args, message in (
        (("init", db_url), "error: db: "),
        (("init", tmp_path / "x.db", "--profile", "nope"), "error: profile: unknown profile 'nope'"),
        (("replay", tmp_path / "missing.db"), "error: db: no journal at"),
        (("audit", tmp_path / "missing.db"), "error: db: no journal at"),
        (("submit", db_url, tmp_path / "missing.jsonl"), "error: file: cannot read"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr.startswith(message), (args, result.stderr)
        assert result.stderr.count("\n") == 1


def test_a_plain_path_is_an_sqlite_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "j.db", "--profile", "derive").exit_code == 0
    assert (tmp_path / "j.db").is_file()
    result = invoke("replay", "j.db")
    assert result.exit_code == 0 and "replayed 0 commands, 0 events: no snapshot to check against" in result.stdout


def test_a_client_id_reused_for_another_command_names_the_line(tmp_path):
    db = tmp_path / "j.db"
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text('{"type": "open_account", "account": "a"}\n')
    two.write_text('{"type": "open_account", "account": "b"}\n')
    assert invoke("init", db).exit_code == 0
    assert invoke("submit", db, one, "--client-ids", "x").exit_code == 0
    result = invoke("submit", db, two, "--client-ids", "x")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: line 1: client_id: 'x1' was used for another command (seq 1)")
