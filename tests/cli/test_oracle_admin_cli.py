"""`margin-engine oracle keygen` and `oracle source add|list|revoke` through the console script's entry
point, and `oracle FILE` still the replay: keys written 0600 and never over a file, sources journaled,
and every error one line (exit 2; 3 for a journal that is not one)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from test_cli_fuzz import cli  # the console script in-process

from margin_engine.oracle.signing import dump_public_key, load_private_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def one_error(args: list, code: int = 2, needle: str = "") -> str:
    got, out, err = cli(*args)
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and needle in lines[0], (got, out, err)
    return lines[0]


def keygen(path: Path) -> str:
    code, out, err = cli("oracle", "keygen", "--out", path, "--format", "json")
    assert code == 0, err
    return json.loads(out)["public_key"]


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "j.db"
    assert cli("journal", "init", path)[0] == 0
    return path


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    path = tmp_path / "feed.key"
    code, out, err = cli("oracle", "keygen", "--out", path)
    assert code == 0, err
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = dump_public_key(load_private_key(text.strip()).public_key())
    assert f"public key: {public}" in out
    assert f"margin-engine oracle source add NAME --public-key {public} --db" in out  # what to run next
    assert text.strip() not in out  # the private key is never printed


def test_keygen_never_overwrites(tmp_path):
    path = tmp_path / "feed.key"
    keygen(path)
    before = path.read_text()
    one_error(["oracle", "keygen", "--out", path], needle="exists")
    assert path.read_text() == before
    one_error(["oracle", "keygen", "--out", tmp_path / "no" / "such" / "dir.key"], needle="--out")
    link = tmp_path / "link.key"
    link.symlink_to(tmp_path / "target.key")  # a dangling link is not followed to create its target
    one_error(["oracle", "keygen", "--out", link], needle="exists")
    assert not (tmp_path / "target.key").exists()


def test_source_add_list_revoke(db, tmp_path):
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    code, out, err = cli("oracle", "source", "add", "feed-a", "--public-key", a, "--db", db)
    assert code == 0 and "registered price source feed-a for BTC, ETH" in out, err
    code, out, err = cli(
        "oracle", "source", "add", "feed-b", "--public-key", b.upper(), "--underlying", "BTC", "--db", db
    )
    assert code == 0, err
    code, out, _ = cli("oracle", "source", "list", "--db", db, "--format", "json")
    assert json.loads(out) == [
        {"source": "feed-a", "public_key": a, "underlyings": ["BTC", "ETH"], "registered_by": "command"},
        {"source": "feed-b", "public_key": b, "underlyings": ["BTC"], "registered_by": "command"},
    ]
    code, out, _ = cli("oracle", "source", "list", "--db", db)
    assert code == 0 and "feed-a" in out and a in out
    assert cli("oracle", "source", "revoke", "feed-a", "--db", db)[0] == 0
    code, out, _ = cli("oracle", "source", "list", "--db", db, "--format", "json")
    assert [s["source"] for s in json.loads(out)] == ["feed-b"]
    assert cli("journal", "audit", db)[0] == 0  # the journal replays, rejections and all


def test_source_add_errors(db, tmp_path):
    a = keygen(tmp_path / "a.key")
    missing = tmp_path / "missing.db"
    one_error(["oracle", "source", "add", "feed-a", "--public-key", a, "--db", missing], needle="no journal")
    assert not missing.exists()  # never created
    one_error(["oracle", "source", "list", "--db", missing], needle="no journal")
    one_error(["oracle", "source", "add", "feed-a", "--public-key", "zz" + a[2:], "--db", db], needle="public_key")
    one_error(["oracle", "source", "add", "feed-a", "--public-key", a[:-2], "--db", db], needle="64 hex digits")
    one_error(["oracle", "source", "add", "bad name", "--public-key", a, "--db", db], needle="source")
    one_error(["oracle", "source", "add", "feed-a", "--public-key", a, "--underlying", "DOGE", "--db", db])
    one_error(["oracle", "source", "add", "feed-a", "--db", db], needle="--public-key")  # a usage error
    assert cli("oracle", "source", "add", "feed-a", "--public-key", a, "--db", db)[0] == 0
    one_error(["oracle", "source", "add", "feed-a", "--public-key", a, "--db", db], needle="source_exists")
    one_error(["oracle", "source", "add", "feed-b", "--public-key", a, "--db", db], needle="duplicate_key")
    one_error(["oracle", "source", "revoke", "nobody", "--db", db], needle="unknown_source")
    not_a_journal = tmp_path / "empty.db"
    not_a_journal.write_bytes(b"")
    got, _, err = cli("oracle", "source", "list", "--db", not_a_journal)
    assert got in (2, 3) and len(err.strip().splitlines()) == 1


def test_oracle_file_is_still_the_replay():
    spike = EXAMPLES / "oracle-spike.csv"
    code, out, err = cli("oracle", spike, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 180
    code, replayed, _ = cli("oracle", "replay", spike, "--format", "json")
    assert code == 0 and json.loads(replayed) == rows
    code, out, _ = cli("oracle", "--profile", "deribit", spike)  # an option first goes to the replay too
    assert code == 0 and "Oracle replay of oracle-spike.csv" in out
    one_error(["oracle", EXAMPLES / "no-such.csv"])
    one_error(["oracle"], needle="file")
    code, out, _ = cli("oracle", "--help")
    assert code == 0 and "keygen" in out and "source" in out and "replay" in out
