"""Small tables the results show themselves with: text for `summary()`, HTML for notebooks, and
pandas only when asked, since pandas is an optional dependency (the `sim` extra)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

PANDAS_HINT = "pip install 'margin-engine[sim]'"


def pandas():
    """pandas, imported on first use: `import margin_engine` must not pay for it."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(f"DataFrames need pandas, an optional dependency: {PANDAS_HINT}") from exc
    return pd


def frame(columns: Sequence[str], rows: Sequence[Sequence[Any]], index: str | None = None):
    """A DataFrame of rows with the given columns (indexed by `index` when named); None is NaN."""
    pd = pandas()
    df = pd.DataFrame([list(r) for r in rows], columns=list(columns))
    for c in df.columns:
        if df[c].dtype == object and all(v is None or isinstance(v, float) for v in df[c]):
            df[c] = df[c].astype(float)  # a numeric column with gaps (None) is float with NaN
    return df.set_index(index) if index is not None else df


def cell(value: Any, column: str = "") -> str:
    """A value as tables show it: USD with thousands and cents, ratios to 4 places, Greeks to 6
    significant digits, nothing as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if column.endswith("_usd"):
            return f"{value:,.2f}"
        if column.endswith("ratio"):
            return f"{value:.4f}"
        return f"{value:.6g}"
    return str(value)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned lines: text to the left, numbers to the right."""
    shown = [[cell(v, c) for v, c in zip(row, columns, strict=True)] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in shown)]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows) for i in range(len(columns))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    return [line(columns), "-" * len(line(columns)), *(line(r) for r in shown)]


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "", index: int = 1) -> str:
    """An HTML table (the first `index` columns as row headers), escaped, for `_repr_html_`."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, (v, c) in enumerate(zip(row, columns, strict=True)):
            tag = "th" if i < index else "td"
            align = ' style="text-align: right"' if _is_number(v) else ""
            cells.append(f"<{tag}{align}>{html.escape(cell(v, c))}</{tag}>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="dataframe">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


BANNER_WIDTH = 78


def banner(title: str, pairs: Sequence[tuple[str, Any]], width: int = BANNER_WIDTH) -> list[str]:
    """arch-style header: a centred title, then label/value pairs two to a line, between rules
    as wide as the table below (`width`); the pairs keep 78 columns."""
    rule = "=" * max(width, BANNER_WIDTH)
    lines = [title.center(len(rule)).rstrip(), rule]
    half = BANNER_WIDTH // 2
    for i in range(0, len(pairs), 2):
        parts = [f"{label + ':':<22}{cell(value, label):>{half - 24}}" for label, value in pairs[i : i + 2]]
        lines.append("   ".join(parts).rstrip())
    lines.append(rule)
    return lines


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
