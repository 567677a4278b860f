"""Tamper evidence: an edited event (after or before the latest snapshot), an edited and re-hashed
snapshot, removed commands, a truncated file, a zeroed file and a WAL deleted after a SIGKILL are each
refused by `serve` at start (exit 3, one line), and by `journal replay` and `journal audit` alike."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from journal_workload import workload
from tamper import edit
from typer.testing import CliRunner

from margin_engine.cli.storage_cmd import journal_app
from margin_engine.storage.schema import commands, events, snapshots
from margin_engine.storage.snapshot import text_hash

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
sys.path.insert(0, str(SERVICE_TESTS))
from svc_helpers import create_key, free_port, start  # noqa: E402

runner = CliRunner()


def cli(*args):
    return runner.invoke(journal_app, [str(a) for a in args])


def serve_refuses(db: Path) -> str:
    """`serve` on the journal must stop at once with exit 3 and one line; returns the line."""
    proc = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", str(db), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def refused_everywhere(db: Path, expected: str) -> None:
    assert expected in serve_refuses(db)
    for verb in ("replay", "audit"):
        result = cli(verb, db)
        assert result.exit_code == 3, (verb, result.output)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, (verb, result.stderr)


@pytest.fixture
def journal_file(tmp_path) -> Path:
    """An SQLite journal of seeded commands in two transactions, the first ending in a snapshot."""
    db = tmp_path / "j.db"
    assert cli("init", db).exit_code == 0
    cmds = workload(random.Random(3), 30)
    for part, lines in enumerate((cmds[:40], cmds[40:])):
        script = tmp_path / f"script{part}.jsonl"
        script.write_text("\n".join(json.dumps(c) for c in lines) + "\n")
        result = cli("submit", db, script, "--snapshot-every", 40 if part == 0 else 1000)
        assert result.exit_code == 0, result.output
    assert count(db, snapshots) == 1 and count(db, commands) > 50
    assert cli("audit", db).exit_code == 0
    return db


def url(db: Path) -> str:
    return f"sqlite:///{db}"


def count(db: Path, table) -> int:
    engine = sa.create_engine(url(db))
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return n


def an_event(db: Path, after_snapshot: bool) -> tuple[int, int, dict]:
    engine = sa.create_engine(url(db))
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(snapshots.c.command_seq))).scalar_one()
        where = events.c.command_seq > latest if after_snapshot else events.c.command_seq <= latest
        row = conn.execute(
            sa.select(events).where(where, events.c.type == "transfer").order_by(events.c.command_seq)
        ).first()
    engine.dispose()
    return row.command_seq, row.idx, json.loads(row.event)


@pytest.mark.parametrize("after_snapshot", [True, False], ids=["after-snapshot", "before-snapshot"])
def test_an_edited_event_is_refused(journal_file, after_snapshot):
    seq, idx, event = an_event(journal_file, after_snapshot)
    text = json.dumps({**event, "amount_units": event["amount_units"] * 2}, sort_keys=True, separators=(",", ":"))
    row = events.c.command_seq == seq, events.c.idx == idx
    edit(url(journal_file), sa.update(events).where(*row).values(event=text))
    refused_everywhere(journal_file, f"command {seq}: the hash chain breaks")


def test_an_edited_and_rehashed_snapshot_is_refused(journal_file):
    engine = sa.create_engine(url(journal_file))
    with engine.connect() as conn:
        row = conn.execute(sa.select(snapshots).order_by(snapshots.c.command_seq.desc())).first()
    engine.dispose()
    # a user's USDC balance raised by one unit, in canonical form, and the hash made to match it
    state = re.sub(r'("user:[^"]+","USDC"\]\},)(\d+)', lambda m: f"{m[1]}{int(m[2]) + 1}", row.state, count=1)
    assert state != row.state
    edit(
        url(journal_file),
        sa.update(snapshots)
        .where(snapshots.c.command_seq == row.command_seq)
        .values(state=state, state_hash=text_hash(state)),
    )
    refused_everywhere(journal_file, f"command {row.command_seq}: the hash chain breaks")


def test_a_snapshot_text_edited_without_its_hash_is_refused(journal_file):
    engine = sa.create_engine(url(journal_file))
    with engine.connect() as conn:
        row = conn.execute(sa.select(snapshots).order_by(snapshots.c.command_seq.desc())).first()
    engine.dispose()
    state = re.sub(r'("user:[^"]+","USDC"\]\},)(\d+)', lambda m: f"{m[1]}{int(m[2]) + 1}", row.state, count=1)
    edit(url(journal_file), sa.update(snapshots).where(snapshots.c.command_seq == row.command_seq).values(state=state))
    refused_everywhere(journal_file, f"snapshot at command {row.command_seq}: its state text does not hash")


def test_removed_commands_are_refused(journal_file):
    last = count(journal_file, commands)
    edit(
        url(journal_file),
        sa.delete(events).where(events.c.command_seq > last - 5),
        sa.delete(snapshots).where(snapshots.c.command_seq > last - 5),
        sa.delete(commands).where(commands.c.seq > last - 5),
    )
    refused_everywhere(journal_file, f"says {last} were committed: commands were lost")
    # without the side file, the head row in the database knows
    Path(f"{journal_file}-head.json").unlink()
    refused_everywhere(journal_file, "commands were removed or rewritten")


def test_a_truncated_file_is_refused(journal_file):
    size = journal_file.stat().st_size
    with journal_file.open("r+b") as f:
        f.truncate(size // 2)
    line = serve_refuses(journal_file)
    assert "malformed" in line or "not a database" in line or "hash chain" in line or "missing" in line, line
    for verb in ("replay", "audit"):
        result = cli(verb, journal_file)
        assert result.exit_code == 3 and result.stderr.count("\n") == 1, result.stderr


def test_a_zeroed_file_is_refused_and_not_made_anew(journal_file):
    journal_file.write_bytes(b"")
    refused_everywhere(journal_file, "the file was emptied or replaced")
    proc = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", str(journal_file), "--init"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3  # --init does not paper over it: no journal was made
    engine = sa.create_engine(url(journal_file))
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_wal_deleted_after_sigkill_is_refused(tmp_path):
    db = tmp_path / "wal.db"
    port = free_port()
    proc = start(str(db), port)
    try:
        headers = {"X-API-Key": create_key(str(db), "admin")}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5) as client:
            client.post("/v1/accounts", json={"account": "a"}).raise_for_status()
            for n in range(60):
                client.post("/v1/accounts/a/deposits", json={"amount": "1", "reference": f"0x{n}:0"}).raise_for_status()
                if n == 19:  # the first 21 commands move into the database file, as a checkpoint does
                    checkpoint = sa.create_engine(url(db))
                    with checkpoint.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    checkpoint.dispose()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        proc.wait()
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 0  # the acknowledged commands are in the WAL, not yet in the file
    wal.unlink()
    refused_everywhere(db, "the journal ends at command 21, but wal.db-head.json says 61 were committed")
