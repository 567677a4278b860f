"""Reading the files people hand the engine (portfolios, command scripts, CSVs, scenarios,
profiles): UTF-8 text, JSON and TOML, where every failure is an InputError naming the file and
what is wrong, never a decoder's traceback (bad bytes, nesting 100,000 deep, a 100,000-digit
number, a cell past the CSV field limit)."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from margin_engine.errors import InputError


def read_text(path: Path, field: str = "file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(field, f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror or exc}") from None


def parse_json(text: str, field: str, what: str = "JSON") -> Any:
    """JSON with decimals kept exact (parse_float=Decimal)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(field, f"not valid {what}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InputError(field, f"not valid {what}: nested too deep") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InputError(field, f"not valid {what}: {str(exc).split(';')[0]}") from None


def parse_toml(text: str, field: str, what: str = "TOML") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(field, f"not valid {what}: {exc}") from None
    except RecursionError:
        raise InputError(field, f"not valid {what}: nested too deep") from None


def csv_rows(
    path: Path, required: tuple[str, ...], expected: str
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of a CSV holding the `required` columns, and its (line number, row) pairs."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise InputError("line 1", f"not valid CSV: {exc}") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError("file", f"{path} lacks column(s) {missing}; {expected}")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise InputError(f"line {reader.line_num}", f"not valid CSV: {exc}") from None

    return columns, rows()
