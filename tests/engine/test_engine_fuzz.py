"""The engine fuzz (tests/engine/fuzz_driver.py) on every packaged profile and Derive's batch
auction: `make test` runs 2,500 commands per profile; `make fuzz` (run by .ci/run) 40,000, so
200,000 in all. Set MARGIN_ENGINE_FUZZ_COMMANDS to change the count per profile."""

import json
import os

import pytest
from fuzz_driver import EXPIRIES, Fuzzer, fuzz_profiles

PROFILES = fuzz_profiles()
COMMANDS = int(os.environ.get("MARGIN_ENGINE_FUZZ_COMMANDS", "2500"))


@pytest.mark.parametrize("name", list(PROFILES))
def test_random_commands_keep_every_invariant(name):
    fuzzer = Fuzzer(PROFILES[name], seed=sum(map(ord, name)))
    stats = fuzzer.run(COMMANDS)
    fuzzer.replays()
    # the driver reached what it is for: liquidations, bankruptcies or auctions, and refusals of every kind
    assert stats.events.get("liquidation_fill", 0) > 0, stats
    if fuzzer.engine.state.now_s > EXPIRIES["25DEC26"]:
        assert stats.events.get("expiry_settled", 0) > 0, stats
    assert stats.events.get("withdrawal_closed", 0) + stats.rejected.get("withdrawals_gated", 0) > 0, stats
    assert stats.input_errors > COMMANDS // 50 and len(stats.rejected) >= 10, stats
    print(f"{name}: {json.dumps(stats.__dict__, sort_keys=True)}")


def test_the_same_seed_gives_the_same_events():
    runs = []
    for _ in range(2):
        fuzzer = Fuzzer(PROFILES["derive"], seed=7)
        fuzzer.run(1500)
        runs.append(json.dumps([e.to_json() for e in fuzzer.engine.journal]))
    assert runs[0] == runs[1]
