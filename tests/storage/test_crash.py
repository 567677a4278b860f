"""Kill -9 a journal writer at random moments (seeded), over and over: every command it acknowledged is
in the journal with the seq it was told, the journal loads, audits and replays, and the state is what
the committed commands give on a fresh engine."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from crash_writer import setup

from margin_engine.engine import Engine, audit
from margin_engine.storage import Journal, audit_journal, replay_journal, state_hash
from margin_engine.storage.schema import commands

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 24
SEED = 20260501


def test_acknowledged_commands_survive_sigkill(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    text = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
    with Journal.create(url, text) as journal:
        engine = journal.load()
        for i, cmd in enumerate(setup()):
            journal.submit(engine, cmd, client_id=f"setup{i}")
    rng = random.Random(SEED)
    acked: dict[str, int] = {}  # client id -> the seq the writer was told
    next_k = 0
    for kill in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), url, str(rng.randrange(10**6)), str(next_k), "100000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = writer.stdout.readline()  # it runs: past imports, load and one commit
        assert first, f"kill {kill}: the writer died before writing: {writer.stderr.read()}"
        time.sleep(rng.uniform(0, 0.08))
        writer.send_signal(signal.SIGKILL)
        rest = writer.stdout.read()
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        for line in (first + rest).split("\n")[:-1]:  # a line cut by the kill has no newline
            seq, client_id = line.split()
            assert acked.setdefault(client_id, int(seq)) == int(seq), "a client id answered with another seq"
        next_k = max(int(c[1:]) for c in acked) + 1
    assert len(acked) > KILLS

    with Journal.open(url) as journal:
        loaded = journal.load()  # the latest snapshot, the events after it, and the audit
        audit(loaded.state)
        with journal.db.connect() as conn:
            rows = conn.execute(sa.select(commands).order_by(commands.c.seq)).all()
        stored = {r.client_id: r.seq for r in rows}
        assert {c: stored.get(c) for c in acked} == acked  # every acknowledged command, at its seq
        written = sorted(int(c[1:]) for c in stored if c.startswith("w"))
        assert written == list(range(len(written)))  # in order, none twice, none lost in between
        twin = Engine(journal.profile)
        for row in rows:
            twin.submit(json.loads(row.command))
        assert state_hash(twin.state) == state_hash(loaded.state)
        assert audit_journal(journal).commands == replay_journal(journal).commands == len(rows)
