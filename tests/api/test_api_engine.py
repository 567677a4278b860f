"""`me.run_engine` runs a script as `margin-engine run` does; `me.load_journal` reads a journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import margin_engine as me
from margin_engine.engine import Engine, Rejection
from margin_engine.errors import InputError
from margin_engine.files.commands_file import load_commands
from margin_engine.margin.profile import load_profile, profile_text
from margin_engine.storage import Journal, database_url

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "scenario.jsonl"


def cli_run(profile: str = "deribit"):
    prof = load_profile(profile)
    engine = Engine(prof)
    outcomes = [(line, engine.apply(command)) for line, _, command in load_commands(SCRIPT, prof)]
    return engine, outcomes


def test_run_engine_equals_the_cli_run():
    report = me.run_engine(SCRIPT)
    engine, outcomes = cli_run()
    df = report.to_pandas()
    assert list(df["step"]) == [line for line, _ in outcomes]
    rejected = [(line, o.code) for line, o in outcomes if isinstance(o, Rejection)]
    assert rejected == [(12, "insufficient_margin")]
    assert list(df[df["outcome"] == "rejected"][["step", "code"]].itertuples(index=False, name=None)) == rejected
    assert df["events"].sum() == sum(len(o) for _, o in outcomes if not isinstance(o, Rejection))
    events = report.events_to_pandas()
    assert len(events) == df["events"].sum()
    assert list(events["event"]) == [e.type for _, o in outcomes if not isinstance(o, Rejection) for e in o]
    assert report.margin().to_json()["accounts"] == [m.to_json() for m in engine.margins()]
    assert report.state()["accounts"][0]["id"] == "alice"
    usdc = report.conservation()["USDC"]
    assert usdc["deposits"] == "100000.000000"


def test_commands_as_a_list_equal_the_file():
    lines = [ln for ln in SCRIPT.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    from_dicts = me.run_engine([json.loads(ln) for ln in lines])
    from_text = me.run_engine(lines)
    from_file = me.run_engine(str(SCRIPT))
    for report in (from_dicts, from_text):
        assert report.margin().to_json() == from_file.margin().to_json()
        assert [r.code for _, r in report.rejections] == ["insufficient_margin"]
    assert list(from_dicts.to_pandas()["step"]) == list(range(len(lines)))


def test_continuing_an_engine_and_showing_the_run():
    first = me.run_engine(SCRIPT)
    more = me.run_engine([{"type": "deposit", "account": "alice", "asset": "USDC", "amount": "1"}], engine=first.engine)
    assert more.engine is first.engine and more.to_pandas()["outcome"].tolist() == ["applied"]
    text = first.summary()
    assert "alice" in text and "bob" in text and "insufficient_margin" in text and "equity_usd" in text
    html = first._repr_html_()
    assert html.count("<table") == 2
    assert repr(first) == "RunReport(profile='deribit', commands=15, rejected=1, accounts=2)"


def test_bad_commands_raise_before_anything_runs():
    engine = Engine(load_profile("deribit"))
    cmds = [{"type": "open_account", "account": "a"}, {"type": "deposit", "account": "a", "amount": "-5"}]
    with pytest.raises(InputError) as info:
        me.run_engine(cmds, engine=engine)
    assert info.value.field.startswith("commands[1]")
    assert not engine.state.accounts  # nothing applied
    with pytest.raises(InputError, match="commands"):
        me.run_engine({"type": "open_account"})
    with pytest.raises(InputError, match="own profile"):
        me.run_engine([], profile="derive", engine=engine)


def test_load_journal(tmp_path):
    db = tmp_path / "journal.db"
    with Journal.create(database_url(str(db)), profile_text("deribit")) as journal:
        engine = journal.load()
        for cmd in [
            {"type": "open_account", "account": "alice"},
            {"type": "deposit", "account": "alice", "asset": "USDC", "amount": "2500", "reference": "t1"},
        ]:
            journal.submit(engine, cmd)
    loaded = me.load_journal(db)
    assert isinstance(loaded, me.Engine) and list(loaded.state.accounts) == ["alice"]
    assert me.margin(loaded).to_pandas().loc["alice", "equity_usd"] == 2500.0
    with pytest.raises(InputError):
        me.load_journal(tmp_path / "missing.db")
