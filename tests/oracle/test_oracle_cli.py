"""`oracle FILE`: the replay table, its JSON, the plot, bad input exiting 2, and the example feeds.

The command is registered in a test app here; the main app registers it as `oracle`.
"""

import json

import pytest
import typer
from oracle_examples import EXAMPLES, FILES
from typer.testing import CliRunner

from margin_engine.cli.oracle_cmd import oracle

app = typer.Typer()
app.command("oracle")(oracle)
app.command("noop")(lambda: None)  # two commands, so that `oracle` is a subcommand as in the main app
runner = CliRunner()
SPIKE = EXAMPLES / "oracle-spike.csv"
CRASH = EXAMPLES / "oracle-crash.csv"
KEYS = {"timestamp", "underlying", "source", "price", "accepted", "reason", "mark", "twap", "ema", "status"}


def invoke(*args):
    return runner.invoke(app, ["oracle", *[str(a) for a in args]])


def write(tmp_path, text):
    path = tmp_path / "feed.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(FILES))
def test_examples_are_what_the_generator_writes(name):
    assert (EXAMPLES / name).read_text() == "\n".join(FILES[name]()) + "\n"


def test_spike_example_json():
    result = invoke(SPIKE, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 180
    assert set(rows[0]) == KEYS | {"status_reason"}
    (spike,) = [r for r in rows if r["price"] == 78000.0]
    assert spike["timestamp"] == "2026-11-25T08:05:02Z" and spike["source"] == "coinbase"
    assert spike["accepted"] is True and spike["reason"] is None
    assert spike["status"] == "ok" and "ignored coinbase (+30.0%)" in spike["status_reason"]
    marks = [r["mark"] for r in rows]
    assert max(marks) < 60100 and min(marks) > 59900  # the spike never reached the mark
    assert all(abs(b / a - 1) < 0.05 for a, b in zip(marks, marks[1:], strict=False))


def test_crash_example_is_followed():
    rows = json.loads(invoke(CRASH, "--format", "json").stdout)
    assert len(rows) == 1083
    assert all(r["status"] == "ok" for r in rows[1:])
    last = rows[-1]
    assert last["timestamp"] == "2026-11-25T09:00:06Z"
    assert abs(last["mark"] / 36000 - 1) < 0.01


def test_table(tmp_path):
    path = write(
        tmp_path,
        "timestamp,underlying,source,price\n"
        "2026-11-25T08:00:00Z,BTC,a,60000\n"
        "2026-11-25T08:00:01Z,BTC,b,60010\n"
        "2026-11-25T08:00:02Z,BTC,a,nan\n"
        "2026-11-25T08:00:01Z,BTC,b,60020\n",
    )
    result = invoke(path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Oracle replay of feed.csv, 2026-11-25 (UTC)" in out
    assert "rejected invalid" in out and "price must be finite" in out
    assert "rejected replayed" in out
    assert "60005" in out  # the median of 60,000 and 60,010


def test_json_writes_non_finite_prices_as_strings(tmp_path):
    path = write(tmp_path, "timestamp,underlying,source,price\n2026-11-25T08:00:00Z,BTC,a,nan\n")
    (row,) = json.loads(invoke(path, "--format", "json").stdout)
    assert row["price"] == "nan" and row["accepted"] is False and row["reason"] == "invalid"
    assert row["mark"] is None and row["status"] == "stale"


def test_plot(tmp_path):
    out = tmp_path / "spike.png"
    result = invoke(SPIKE, "--plot", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("text", "args", "field"),
    [
        ("timestamp,underlying,source,price\n2026-11-25T08:00:00Z,BTC,a,x\n", [], "line 2: price"),
        ("timestamp,underlying,source,price\n2026-11-25T08:00:00Z,DOGE,a,1\n", [], "line 2: underlying"),
        ("timestamp,underlying,price\n", [], "file"),
        ("timestamp,underlying,source,price\n2026-11-25T08:00:00Z,BTC,a,1\n", ["--profile", "nosuch"], "profile"),
        (
            "timestamp,underlying,source,price\n2026-11-25T08:00:00Z,BTC,a,1\n",
            ["--plot", "/nonexistent/x.png"],
            "--plot",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, text, args, field):
    result = invoke(write(tmp_path, text), *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.stderr


def test_missing_file(tmp_path):
    result = invoke(tmp_path / "nope.csv")
    assert result.exit_code == 2 and result.stderr.startswith("error: file:")
