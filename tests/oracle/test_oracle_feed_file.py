"""Raw update CSVs: both time forms, optional columns, and errors naming the line and column."""

import math

import pytest

from margin_engine.errors import InputError
from margin_engine.oracle import PriceUpdate
from margin_engine.oracle.feed_file import read_updates

T0 = 1795593600  # 2026-11-25T08:00:00Z


def write(tmp_path, text):
    path = tmp_path / "feed.csv"
    path.write_text(text)
    return path


def test_reads_both_time_forms_and_optional_columns(tmp_path):
    path = write(
        tmp_path,
        "timestamp,underlying,source,price,confidence,volume\n"
        "2026-11-25T08:00:00Z,BTC,coinbase,60000.5,12.5,1.5\n"
        f"{T0 + 10},BTC,kraken,60001,,\n"
        "2026-11-25T09:00:20+01:00,ETH,kraken,nan,,\n",
    )
    first, second, third = read_updates(path)
    assert first == PriceUpdate("BTC", "coinbase", 60000.5, 12.5, T0, 1.5)
    assert second == PriceUpdate("BTC", "kraken", 60001.0, None, T0 + 10, None)
    assert third.timestamp_s == T0 + 20 and math.isnan(third.price)  # read as given: the aggregator rejects it


def test_minimal_header(tmp_path):
    (update,) = read_updates(write(tmp_path, f"timestamp,underlying,source,price\n{T0},BTC,a,1\n"))
    assert update.confidence is None and update.volume is None


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("timestamp,underlying,price\n", "file", "lacks column(s) ['source']"),
        ("timestamp,underlying,source,price,bid\n", "file", "unknown column(s) ['bid']"),
        ("timestamp,underlying,source,price\n", "file", "has no updates"),
        ("timestamp,underlying,source,price\n2026-11-25T08:00:00,BTC,a,1\n", "line 2: timestamp", "needs a zone"),
        ("timestamp,underlying,source,price\nyesterday,BTC,a,1\n", "line 2: timestamp", "ISO 8601"),
        (f"timestamp,underlying,source,price\n{T0},BTC,a,1\n{T0},BTC,a,cheap\n", "line 3: price", "not a number"),
        (f"timestamp,underlying,source,price,volume\n{T0},BTC,a,1,lots\n", "line 2: volume", "not a number"),
        (f"timestamp,underlying,source,price\n{T0},btc,a,1\n", "line 2: underlying", "[A-Z0-9]"),
        (f"timestamp,underlying,source,price\n{T0},BTC,a b,1\n", "line 2: source", "expected 1-64"),
        (f"timestamp,underlying,source,price\n{T0},BTC,a\n", "line 2", "expected 4 cells"),
        (f"timestamp,underlying,source,price\n{T0},BTC,a,1,2\n", "line 2", "expected 4 cells"),
    ],
)
def test_errors_name_line_and_column(tmp_path, text, field, words):
    with pytest.raises(InputError) as exc:
        read_updates(write(tmp_path, text))
    assert exc.value.field == field
    assert words in exc.value.message


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as exc:
        read_updates(tmp_path / "nope.csv")
    assert exc.value.field == "file"
