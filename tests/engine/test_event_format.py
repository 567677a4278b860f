"""Event JSON format 2 (units in names), what readers get beside it, and format 1 journals still loading."""

import json
from pathlib import Path

from margin_engine.engine import Engine, Rejection
from margin_engine.engine.describe import event_view
from margin_engine.engine.events import _FORMAT_1_NAMES, event_from_json
from margin_engine.margin.profile import load_profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _events(name: str, profile: str):
    prof = load_profile(profile)
    engine = Engine(prof)
    out = []
    for line in (EXAMPLES / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            outcome = engine.submit(json.loads(line))
            out += [] if isinstance(outcome, Rejection) else list(outcome)
    return prof, out


def test_format_1_event_json_loads_to_the_same_event():
    _, events = _events("liquidation-adl.jsonl", "deribit")
    _, dutch = _events("liquidation-dutch-insolvent.jsonl", "derive")
    seen = set()
    for event in events + dutch:
        new = event.to_json()
        old = {_FORMAT_1_NAMES.get(k, k): v for k, v in new.items()}
        seen |= {k for k in new if k in _FORMAT_1_NAMES}
        assert event_from_json(new) == event == event_from_json(old)
    assert {"amount_units", "time_s", "quote_units", "paid_units", "deficit_units", "loss_units"} <= seen


def test_readers_get_decimal_amounts_iso_times_and_a_sentence():
    prof, events = _events("liquidation-dutch-insolvent.jsonl", "derive")
    views = [event_view(e, prof) for e in events]
    deposit = next(v for v in views if v["type"] == "transfer" and v["reason"] == "deposit")
    assert (deposit["amount_units"], deposit["amount"]) == (50_000_000_000, "50000.000000")
    assert deposit["text"] == "50,000.00 USDC: external -> insurance fund (deposit)"
    clock = next(v for v in views if v["type"] == "time_advanced")
    assert (clock["time_s"], clock["time"]) == (1795593600, "2026-11-25T08:00:00Z")
    fill = next(v for v in views if v["type"] == "liquidation_fill")
    # the example's fund pays |MtM| + (|MM| - |MtM|) x 0.5 = 15,000 + 33,800 x 0.5 = 31,900 at 30 minutes
    assert fill["paid"] == "-31900.000000"
    assert fill["text"] == "keeper took 100.00% of trader's book (Dutch auction): was paid 31,900.00 USDC"
