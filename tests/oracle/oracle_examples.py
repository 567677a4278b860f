"""The example feeds `examples/oracle-spike.csv` and `examples/oracle-crash.csv`, built deterministically.

`python tests/oracle/oracle_examples.py` rewrites them; `test_oracle_cli.py` checks the files match.
"""

from __future__ import annotations

import math
from pathlib import Path

from margin_engine.engine.commands import format_time

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = 1795593600  # 2026-11-25T08:00:00Z
SOURCES = ("binance", "coinbase", "kraken")


def spike_rows() -> list[str]:
    """10 minutes of BTC near 60,000 from 3 sources every 10 s (2 s apart); coinbase prints +30% once, at 08:05."""
    rows = ["timestamp,underlying,source,price,confidence,volume"]
    for step in range(60):
        index = 60000 + 40 * math.sin(2 * math.pi * step / 30)
        for k, (source, volume) in enumerate(zip(SOURCES, ("1.25", "0.8", "0.5"), strict=True)):
            price = (index + 6 * (k - 1)) * (1.3 if (step, source) == (30, "coinbase") else 1)
            rows.append(f"{format_time(T0 + 10 * step + 2 * k)},BTC,{source},{price:.2f},15,{volume}")
    return rows


def crash_rows() -> list[str]:
    """BTC falls steadily from 60,000 to 36,000 (-40%) over one hour; 3 sources every 10 s, 3 s apart, Unix seconds."""
    rows = ["timestamp,underlying,source,price"]
    for step in range(361):
        index = 60000 * (1 - 0.4 * step / 360)
        for k, source in enumerate(SOURCES):
            rows.append(f"{T0 + 10 * step + 3 * k},BTC,{source},{index * (1 + 0.0003 * (k - 1)):.2f}")
    return rows


FILES = {"oracle-spike.csv": spike_rows, "oracle-crash.csv": crash_rows}

if __name__ == "__main__":
    for name, rows in FILES.items():
        (EXAMPLES / name).write_text("\n".join(rows()) + "\n")
