"""Raw price updates from a CSV: `timestamp,underlying,source,price[,confidence][,volume]`.

`timestamp` is ISO 8601 with a zone or Unix seconds. A malformed cell is an `InputError` naming the
line and column. A price that parses but makes no sense (NaN, <= 0) is read as given: rejecting it
as `invalid` is the aggregator's job, as it would be for a live feed.
"""

from __future__ import annotations

import re
from pathlib import Path

from margin_engine.clock import parse_time
from margin_engine.errors import InputError
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.reading import csv_rows

REQUIRED = ("timestamp", "underlying", "source", "price")
OPTIONAL = ("confidence", "volume")
_NUMBER = re.compile(r"[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|nan|inf|infinity)", re.IGNORECASE)
EXPECTED = "expected header timestamp,underlying,source,price[,confidence][,volume]"


def read_updates(path: Path) -> tuple[PriceUpdate, ...]:
    columns, rows = csv_rows(path, REQUIRED, EXPECTED)
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise InputError("file", f"{path} has unknown column(s) {unknown}; {EXPECTED}")
    updates = tuple(_row(row, line, len(columns)) for line, row in rows)
    if not updates:
        raise InputError("file", f"{path} has no updates")
    return updates


def _row(row: dict, line: int, width: int) -> PriceUpdate:
    if None in row or None in row.values():  # DictReader's marks of a cell too many / too few
        raise InputError(f"line {line}", f"expected {width} cells, as in the header")
    try:
        text = row["timestamp"].strip()
        return PriceUpdate(
            underlying=row["underlying"].strip(),
            source=row["source"].strip(),
            price=_number(row["price"], "price"),
            confidence=_optional_number(row.get("confidence"), "confidence"),
            timestamp_s=parse_time(
                int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else text, "timestamp"
            ),
            volume=_optional_number(row.get("volume"), "volume"),
        )
    except InputError as exc:
        raise InputError(f"line {line}: {exc.field}", exc.message) from None


def _number(text: str, column: str) -> float:
    """A decimal in ASCII (nan and inf too: the guards reject them as a live feed's); never
    underscores, hex or other scripts' digits, which float() would take."""
    text = text.strip()
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        raise InputError(column, f"not a number: {text[:40]!r}")
    return float(text)


def _optional_number(text: str | None, column: str) -> float | None:
    return None if text is None or not text.strip() else _number(text, column)
