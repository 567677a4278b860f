"""Hostile values in every numeric and text field of every subcommand, through the console
script's own entry point (`margin_engine.cli.app.main`): each exits 2 with one line on stderr
that starts `error:` (3 and `journal broken:` for a database that is not a journal), never a
traceback. Options are fuzzed on the command line; fields inside portfolio files, command
scripts, CSVs and scenario files in the files themselves."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from test_cli import BASE

from margin_engine.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# invalid wherever a number is expected (text and JSON forms)
HOSTILE_TEXT = [
    "1e400", "-1e400", "1e-400", "Infinity", "-inf", "NaN", "0x10", "1_000", "", " ", "١٢", "１２",
    "9" * 5000, "1e-999999999", "1e30", "-1e30", "1,5", "--", "\x00", "é",
]  # fmt: skip
HOSTILE_JSON = [*HOSTILE_TEXT, True, [1], {"a": 1}, 1e308, 10**40, -(10**40)]
# invalid wherever a name or id is expected (a number-like string is a fine name)
HOSTILE_NAMES = ["", " ", "\x00", "é", "a b", "9" * 5000, "../x", True, [1], {"a": 1}, 1e308, 10**40]

ISOLATED = {
    "id": "iso",
    "mode": "isolated",
    "collateral": {"USDC": "1000"},
    "positions": [{"instrument": "BTC-PERP", "size": "1", "collateral": "2000"}],
}
PORTFOLIO = {**BASE, "accounts": [*BASE["accounts"], ISOLATED]}  # test_cli's book and an isolated account
PORTFOLIO_FIELDS = [
    ("valuation_time",),
    ("market", "BTC", "index"),
    ("market", "BTC", "vol"),
    ("market", "BTC", "rate"),
    ("accounts", 0, "id"),
    ("accounts", 0, "mode"),
    ("accounts", 0, "collateral", "USDC"),
    ("accounts", 0, "positions", 0, "instrument"),
    ("accounts", 0, "positions", 0, "size"),
    ("accounts", 0, "positions", 0, "entry_price"),
    ("accounts", 0, "positions", 1, "size"),
    ("accounts", 0, "positions", 1, "entry_price"),
    ("accounts", 1, "positions", 0, "collateral"),
]

SCRIPT = [
    {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
    {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6", "rate": "0", "confidence": "1"},
    {"type": "open_account", "account": "a", "mode": "cross"},
    {"type": "open_account", "account": "b"},
    {"type": "deposit", "account": "a", "asset": "USDC", "amount": "100000", "reference": "tx-1"},
    {"type": "deposit", "account": "b", "amount": "100000"},
    {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1", "price": "60000"},
    {"type": "allocate", "account": "a", "instrument": "BTC-PERP", "amount": "10"},
    {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"},
    {"type": "withdraw", "account": "a", "amount": "10"},
    {"type": "request_withdrawal", "account": "a", "amount": "10"},
    {"type": "settle_withdrawal", "withdrawal": "W1", "reference": "tx-2"},
    {"type": "fail_withdrawal", "withdrawal": "W1", "reason": "closed"},
    {"type": "fund_insurance", "asset": "USDC", "amount": "1000"},
    {"type": "start_liquidation", "account": "a", "liquidator": "b"},
    {"type": "bid", "auction": "L1", "liquidator": "b", "fraction": "0.5", "max_price": "100"},
    {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "60000"},
    {
        "type": "oracle_update",
        "underlying": "BTC",
        "source": "binance",
        "price": "60000",
        "confidence": "10",
        "volume": "5",
        "timestamp": 1795593600,
        "signature": "00" * 64,
    },
]
SCRIPT_SKIP = {"type"}
# command fields holding a name or id, and free text the engine may answer with a rejection
ID_FIELDS = {"account", "buyer", "seller", "liquidator", "asset", "instrument", "underlying", "mode", "withdrawal"}
FREE_FIELDS = {"reason", "source", "auction", "reference", "signature", "aggressor"}


def cli(*args: object) -> tuple[int, str, str]:
    """Run the console script in-process: (exit code, stdout, stderr); any other exception escapes."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["margin-engine", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def refused(args: list, codes=(2,), prefix="error:") -> None:
    code, out, err = cli(*args)
    shown = f"{args!r}"[:300]
    assert code in codes, f"{shown}: exit {code}\n{out[-500:]}\n{err[-1500:]}"
    if code == 0:  # allowed for free text: an answer (a rejection), nothing on stderr
        assert not err and "Traceback" not in out, f"{shown}: {err[:800]!r}"
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), f"{shown}: stderr {err[:800]!r}"
    assert len(lines[0]) <= 600, f"{shown}: a {len(lines[0])}-character error line"
    assert "Traceback" not in out + err


def put(doc, path, value):
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# ------------------------------------------------------------------------ margin and what-if


@pytest.mark.parametrize("field", PORTFOLIO_FIELDS, ids=lambda f: ".".join(map(str, f)))
def test_margin_and_what_if_refuse_hostile_portfolio_fields(tmp_path, field):
    for i, value in enumerate(HOSTILE_NAMES if field[-1] == "id" else HOSTILE_JSON):
        path = write(tmp_path, f"p{i}.json", put(PORTFOLIO, field, value))
        refused(["margin", path])
        refused(["what-if", path, "--account", "alice", "--trade", "BTC-PERP:1"])


@pytest.mark.parametrize(
    "raw",
    [
        '{"valuation_time": "2026-11-25T08:00:00Z", "market": {"BTC": {"index": 1e400, "vol": 0.6}}, "accounts": []}',
        '{"valuation_time": "2026-11-25T08:00:00Z", "market": {"BTC": {"index": Infinity, "vol": NaN}}, "accounts": 1}',
        '{"valuation_time": 1e999, "market": {}, "accounts": []}',
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        "",
        "{oops",
        '{"valuation_time": "2026-11-25T08:00:00Z", "market": [], "accounts": {}}',
        "1" * 100_000,
        '"' + "x" * 100_000 + '"',
    ],
    ids=lambda r: r[:30],
)
def test_margin_refuses_malformed_json(tmp_path, raw):
    refused(["margin", write(tmp_path, "p.json", raw)])
    refused(["what-if", write(tmp_path, "p.json", raw), "--account", "alice", "--trade", "BTC-PERP:1"])


def test_margin_refuses_undecodable_and_missing_files(tmp_path):
    refused(["margin", write(tmp_path, "p.json", "\xe9\xff".encode("latin-1"))])
    refused(["margin", write(tmp_path, "p.toml", b'valuation_time = "\xff"')])
    refused(["margin", tmp_path / "missing.json"])
    refused(["margin", tmp_path])  # a folder
    for profile in ["nope", "", "../../etc/passwd", str(tmp_path / "missing.toml"), "x" * 5000]:
        refused(["margin", write(tmp_path, "ok.json", PORTFOLIO), "--profile", profile])


def test_what_if_refuses_hostile_trades_and_accounts(tmp_path):
    path = write(tmp_path, "p.json", PORTFOLIO)
    for value in HOSTILE_TEXT:
        for trade in (f"BTC-PERP:{value}", f"BTC-PERP:1@{value}", f"{value}:1", f"BTC-25DEC26-60000-C:{value}"):
            refused(["what-if", path, "--account", "alice", "--trade", trade])
        if value.strip():
            refused(["what-if", path, "--account", value, "--trade", "BTC-PERP:1"])


# ----------------------------------------------------------------------------------------- run


@pytest.mark.parametrize("line", range(len(SCRIPT)), ids=lambda i: SCRIPT[i]["type"])
def test_run_refuses_hostile_command_fields(tmp_path, line):
    cmd = SCRIPT[line]
    for key in sorted(set(cmd) - SCRIPT_SKIP):
        values = HOSTILE_NAMES if key in ID_FIELDS else HOSTILE_JSON
        for i, value in enumerate(values):
            script = [*SCRIPT[:line], {**cmd, key: value}, *SCRIPT[line + 1 :]]
            path = write(tmp_path, f"s{i}.jsonl", "\n".join(json.dumps(c) for c in script))
            refused(["run", path], codes=(0, 2) if key in FREE_FIELDS else (2,))


def test_run_refuses_malformed_scripts(tmp_path):
    for raw in ["{oops", "[1, 2]", '"text"', "[" * 100_000, '{"type": "trade"}', '{"type": 5}', "null"]:
        refused(["run", write(tmp_path, "s.jsonl", raw)])
    refused(["run", write(tmp_path, "s.jsonl", b'{"type": "open_account", "account": "\xff"}')])
    refused(["run", tmp_path / "missing.jsonl"])


# ------------------------------------------------------------------------------ CSV commands


def csv_with(path: Path, column: str, value: str, rows: int | None = None) -> str:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    body = lines[1 : (rows or len(lines))]
    j = header.index(column)
    cells = body[len(body) // 2].split(",")
    cells[j] = value
    body[len(body) // 2] = ",".join(cells)
    return "\n".join([lines[0], *body]) + "\n"


@pytest.mark.parametrize("column", ["time", "close"])
def test_calibrate_and_backtest_refuse_hostile_cells(tmp_path, column):
    source = EXAMPLES / "btc-usd-1d-2023-2025.csv"
    for i, value in enumerate([*HOSTILE_TEXT, "1e308", "-5", "x" * 131_072]):
        path = write(tmp_path, f"c{i}.csv", csv_with(source, column, value, rows=200))
        refused(["calibrate", path, "--model", "ewma"])
        refused(["backtest", path])


@pytest.mark.parametrize(
    "option", ["--confidence", "--horizon-days", "--floor", "--cap", "--max-change-per-day", "--model", "--tail"]
)
def test_calibrate_refuses_hostile_options(tmp_path, option):
    source = EXAMPLES / "btc-usd-1d-2023-2025.csv"
    above = {"--horizon-days": "366", "--model": "arch", "--tail": "normal"}.get(option, "2")  # past the range
    for value in [*HOSTILE_TEXT, "1e308", "0", above]:
        if value.strip() and not value.startswith("-"):
            refused(["calibrate", source, "--model", "ewma", option, value])


def test_backtest_refuses_a_hostile_vol():
    source = EXAMPLES / "btc-usd-1d-2023-2025.csv"
    for value in [*HOSTILE_TEXT, "1e308", "0"]:
        if value.strip() and not value.startswith("-"):
            refused(["backtest", source, "--vol", value])


@pytest.mark.parametrize("column", ["timestamp", "underlying", "source", "price", "confidence"])
def test_oracle_refuses_hostile_cells(tmp_path, column):
    """A price that parses but makes no sense (NaN, inf, 0, 1e30) is read as a live feed would send
    it and refused by the guards (`accepted: false`); anything else that is no number is an error."""
    text = "timestamp,underlying,source,price,confidence\n" + "".join(
        f"{line},5\n" for line in (EXAMPLES / "oracle-crash.csv").read_text().splitlines()[1:60]
    )
    source = write(tmp_path, "feed.csv", text)
    names = ["", " ", "\x00", "é", "a b", "x" * 100, "9" * 5000]
    values = names if column in ("underlying", "source") else [*HOSTILE_TEXT, str(10**12), "9" * 30, "x" * 131_072]
    for i, value in enumerate(values):
        if column == "confidence" and value.strip() in ("", "1e-400", "1e-999999999"):
            continue  # no confidence, or one of 0 (a tight band): fine
        path = write(tmp_path, f"o{i}.csv", csv_with(source, column, value))
        if column in ("price", "confidence") and len(value) <= 64 and READ_AS_GIVEN.fullmatch(value.strip()):
            code, out, err = cli("oracle", path, "--format", "json")
            assert code == 0 and not err, (value, err)
            rows = json.loads(out)
            before, row = rows[28], rows[29]
            moved = row["mark"] is None or abs(row["mark"] / before["mark"] - 1) > 0.05
            assert row["accepted"] is False or not moved, (value, row)
            continue
        refused(["oracle", path])
    refused(["oracle", write(tmp_path, "u.csv", csv_with(source, "underlying", "DOGE"))])


# what the oracle CSV reads as a number, for the guards to refuse or outvote
READ_AS_GIVEN = re.compile(r"[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|nan|inf|infinity)", re.IGNORECASE)


# -------------------------------------------------------------------------------- simulate


def scenario_fields(doc: dict, prefix=()) -> list[tuple]:
    out = []
    for key, value in doc.items():
        if isinstance(value, dict):
            out += scenario_fields(value, (*prefix, key))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append((*prefix, key))
    return out


SCENARIO = EXAMPLES / "scenarios" / "flash-wick-1m.toml"
SCENARIO_FIELDS = scenario_fields(tomllib.loads(SCENARIO.read_text()))


def toml_with(path: Path, field: tuple, value: str) -> str:
    """The scenario with one key's value replaced, section by section."""
    section, key = ".".join(field[:-1]), field[-1]
    current, lines = "", []
    for line in path.read_text().splitlines():
        header = re.match(r"^\[(.+)\]", line)
        if header:
            current = header[1]
        elif current == section and re.match(rf"^{re.escape(key)}\s*=", line):
            line = f"{key} = {value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("field", SCENARIO_FIELDS, ids=lambda f: ".".join(f))
def test_simulate_refuses_hostile_scenario_numbers(tmp_path, field):
    for i, value in enumerate(["inf", "-inf", "nan", "1e400", "1e300", "-1e300", '"text"', "[1]", "true"]):
        path = write(tmp_path, f"s{i}.toml", toml_with(SCENARIO, field, value))
        refused(["simulate", path, "--out", tmp_path / f"out{i}"])


def test_simulate_refuses_hostile_options(tmp_path):
    existing = write(tmp_path, "file", "x")
    for args in (
        ["--paths", "0"],
        ["--paths", "1e400"],
        ["--paths", "-1"],
        ["--seed", "-1"],
        ["--seed", "NaN"],
        ["--seed", "9" * 5000],
        ["--workers", "0"],
        ["--workers", "1_000"],
        ["--out", existing],
        ["--dask", ""],
    ):
        refused(["simulate", SCENARIO, *args])
    refused(["simulate", tmp_path / "missing.toml"])
    refused(["simulate", write(tmp_path, "bad.toml", "[[[")])


# --------------------------------------------------------------------- service and journal


def test_key_and_serve_commands_refuse_hostile_values(tmp_path):
    missing = tmp_path / "missing.db"
    for args in (
        ["create-key", "trader", "--db", missing, "--account", "a"],
        ["create-key", "nonsense", "--db", missing],
        ["revoke-key", "k1", "--db", missing],
        ["list-keys", "--db", missing],
        ["serve", "--db", missing],
        ["serve", "--port", "99999"],
        ["serve", "--port", "1e400"],
        ["serve", "--port", "-1"],
        ["serve", "--profile", "nope", "--db", missing, "--init"],
    ):
        refused(args)
    code, _, _ = cli("journal", "init", tmp_path / "j.db")
    assert code == 0
    for value in [v for v in HOSTILE_NAMES if isinstance(v, str) and v.strip() and "\x00" not in v] + ["x" * 70]:
        refused(["create-key", "trader", "--db", tmp_path / "j.db", "--account", value])
        refused(["revoke-key", value, "--db", tmp_path / "j.db"])


def test_journal_commands_refuse_broken_databases(tmp_path):
    junk = write(tmp_path, "junk.db", b"\x00not a database" * 200)
    text = write(tmp_path, "text.db", "hello")
    for db in (junk, text):
        for sub in (["replay"], ["audit"]):
            refused(["journal", *sub, db], codes=(2, 3), prefix="")
    refused(["journal", "replay", tmp_path / "missing.db"])
    refused(["journal", "audit", tmp_path / "missing.db"])
    code, _, _ = cli("journal", "init", tmp_path / "j.db")
    assert code == 0
    for i, value in enumerate(HOSTILE_JSON[:12]):
        line = json.dumps({"type": "deposit", "account": "a", "amount": value})
        refused(["journal", "submit", tmp_path / "j.db", write(tmp_path, f"a{i}.jsonl", line)])
