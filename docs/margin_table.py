"""The README's table of standard vs portfolio initial margin on examples/pm-book.json, computed.

    python docs/margin_table.py           # print the table
    python docs/margin_table.py --write   # put it into README.md in place of the old one

tests/api/test_api_margin.py checks that README.md holds exactly what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("deribit", "deribit-pm", "derive", "derive-pmrm")
ACCOUNTS = {
    "call-spread": "call-spread (short 60k / long 65k calls x10)",
    "iron-condor": "iron-condor (ETH, x50)",
    "conversion": "conversion (short call, long put, long perp x5)",
    "calendar": "calendar (short Dec / long Mar calls x5)",
    "covered-call": "covered-call (10 BTC, short 10 calls)",
}
HEADER = "| account | " + " | ".join(PROFILES) + " |"


def table() -> str:
    import margin_engine as me

    frames = {p: me.margin(str(ROOT / "examples" / "pm-book.json"), profile=p).to_pandas() for p in PROFILES}
    lines = [HEADER, "|---|" + "---:|" * len(PROFILES)]
    for account, label in ACCOUNTS.items():
        values = (f"{round(frames[p].loc[account, 'initial_margin_usd']):,}" for p in PROFILES)
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def replace_in(readme: str, new: str) -> str:
    """README text with the table that starts at HEADER replaced by `new`."""
    start = readme.index(HEADER)
    end = readme.index("\n\n", start)
    return readme[:start] + new + readme[end:]


if __name__ == "__main__":
    text = table()
    if "--write" in sys.argv[1:]:
        path = ROOT / "README.md"
        path.write_text(replace_in(path.read_text(), text))
    print(text)
