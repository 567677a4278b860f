"""Build examples/python-api.ipynb (outputs cleared) from the cells below.

    .venv/bin/python examples/make_python_api_notebook.py

The notebook runs from examples/ (paths are relative to it); tests/api/test_notebook.py executes
it and checks it is what this script builds.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "python-api.ipynb"

CELLS = [
    (
        "md",
        """# margin-engine from Python

Margin of a sample book under standard and portfolio margin, option prices and Greeks, a what-if
trade, an engine script and a short stress simulation, all as DataFrames. See
[docs/python.md](../docs/python.md). Amounts carry their unit in the column name: `_usd` (float
USD), `_units` (integer smallest units of an asset), `_s` (Unix seconds or seconds).""",
    ),
    ("code", "import pandas as pd\n\nimport margin_engine as me\n\nme.__version__"),
    (
        "md",
        """## Standard margin

`examples/pm-book.json` holds eight hedged and unhedged books. Under the `deribit` profile
portfolio accounts are margined as cross (Deribit's standard margin). A report shows itself as a
table.""",
    ),
    ("code", 'std = me.margin("pm-book.json", profile="deribit")\nstd'),
    (
        "md",
        """## Portfolio margin

The same book under `deribit-pm`: a risk matrix of spot x vol shocks. `to_pandas()` is one row per
account.""",
    ),
    ("code", 'pm = me.margin("pm-book.json", profile="deribit-pm")\npm.to_pandas()'),
    (
        "code",
        """compare = pd.DataFrame(
    {
        "deribit_im_usd": std.to_pandas()["initial_margin_usd"],
        "deribit_pm_im_usd": pm.to_pandas()["initial_margin_usd"],
    }
)
compare["saved_pct"] = 100 * (1 - compare["deribit_pm_im_usd"] / compare["deribit_im_usd"])
compare.round(1)""",
    ),
    ("code", "print(pm.summary())"),
    (
        "md",
        "Per position (standalone requirements are NaN under a risk matrix), and why each account needs what it needs:",
    ),
    ("code", "pm.positions_to_pandas()"),
    ("code", "pm.risk_to_pandas()"),
    (
        "md",
        """## Prices and Greeks

Instruments by name on the portfolio's market and valuation time (the pricing the margin uses), or
raw Black-76 inputs. Price, vega and theta are USD per unit of the underlying (vega per vol point,
theta per day).""",
    ),
    (
        "code",
        'names = ["BTC-25DEC26-60000-C", "BTC-25DEC26-60000-P", "ETH-25DEC26-3000-P", "BTC-PERP"]\n'
        'me.price_options(names, "pm-book.json")',
    ),
    (
        "code",
        "strikes = [50_000, 55_000, 60_000, 65_000, 70_000]\n"
        "me.price_black76(forward=60_000, strike=strikes, time_years=30 / 365, vol=0.6)",
    ),
    ("md", "A position's Greeks are a named tuple:"),
    ("code", 'g = pm["call-spread"].positions[0].greeks\ng, g.delta'),
    (
        "md",
        """## What-if

Buy 10 puts at the mark for the `naked-put` account: the engine's own trade (fees, premium, margin
check) on a scratch copy.""",
    ),
    ("code", 'wi = me.what_if("pm-book.json", "naked-put", "BTC-25DEC26-45000-P:10", profile="deribit-pm")\nwi'),
    ("code", "wi.to_pandas()"),
    (
        "md",
        """## An engine script

`scenario.jsonl`: two traders, a perp and an option, a price move, funding and expiry. One row per
command (a refused withdrawal included), one per event, and the final margins.""",
    ),
    ("code", 'run = me.run_engine("scenario.jsonl")\nrun.to_pandas()'),
    ("code", "run.events_to_pandas().head(10)"),
    ("code", "run.margin().to_pandas()"),
    (
        "md",
        """## A DataFrame of positions

Positions as rows (account, instrument, size, optional entry_price, collateral, mode), balances and
the market beside them.""",
    ),
    (
        "code",
        """positions = pd.DataFrame(
    {
        "account": ["alice", "alice", "bob"],
        "instrument": ["BTC-PERP", "BTC-25DEC26-60000-C", "BTC-25DEC26-55000-P"],
        "size": [-2, -1, 5],
        "entry_price": [61_000, None, None],
    }
)
me.margin(
    positions,
    market={"BTC": {"index": 60_000, "vol": 0.6}},
    valuation_time="2026-11-25T08:00:00Z",
    collateral={"alice": {"USDC": "100000"}, "bob": {"USDC": "20000"}},
).to_pandas()""",
    ),
    (
        "md",
        """## A short stress simulation

One path of one variant of the minute-step flash-wick scenario (generated Merton prices, so it
needs no outside data) through the real engine, in a few seconds; `paths=` and `variants=` keep it
small. The crash replays under `scenarios/` read the recorded prices shipped in `examples/data`.""",
    ),
    (
        "code",
        'sim = me.simulate("scenarios/flash-wick-1m.toml", paths=1, variants=["guards-on"])\nsim',
    ),
    ("code", "sim.to_pandas().T.head(15)"),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding changes nothing
    return nb


if __name__ == "__main__":
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
