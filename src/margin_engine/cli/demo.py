"""The guided demo: what the engine does, on embedded defaults, in a minute of reading."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

from margin_engine.cli.render import print_margins
from margin_engine.engine import Engine, Rejection, audit
from margin_engine.margin.profile import Profile

STEPS: list[tuple[str, list[dict]]] = [
    (
        "A market, three traders and a keeper. Carol keeps each position apart (isolated margin); Alice and Bob "
        "pool their collateral (cross margin). Each deposit is credited when custody confirms its transfer "
        "(a chain transaction and log index, here made up), once per reference.",
        [
            {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
            {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6", "rate": "0"},
            {"type": "open_account", "account": "alice", "mode": "cross"},
            {"type": "open_account", "account": "bob", "mode": "cross"},
            {"type": "open_account", "account": "carol", "mode": "isolated"},
            {"type": "deposit", "account": "alice", "asset": "USDC", "amount": "30000", "reference": "0x5a1e:0"},
            {"type": "deposit", "account": "bob", "asset": "USDC", "amount": "150000", "reference": "0x5a1f:0"},
            {"type": "deposit", "account": "bob", "asset": "BTC", "amount": "1", "reference": "0x5a1f:1"},
            {"type": "deposit", "account": "carol", "asset": "USDC", "amount": "10000", "reference": "0x5a20:0"},
            {"type": "open_account", "account": "keeper", "mode": "cross"},
            {"type": "deposit", "account": "keeper", "asset": "USDC", "amount": "500000", "reference": "0x5a21:0"},
            {"type": "fund_insurance", "asset": "USDC", "amount": "25000"},
        ],
    ),
    (
        "Alice sells Bob two BTC calls and goes long a perp; Carol buys a perp against Bob. Every fill is "
        "margin-checked on both sides: a side that adds risk must cover initial margin after it.",
        [
            {
                "type": "trade",
                "buyer": "bob",
                "seller": "alice",
                "instrument": "BTC-25DEC26-60000-C",
                "size": "2",
                "price": "4100",
            },
            {
                "type": "trade",
                "buyer": "alice",
                "seller": "bob",
                "instrument": "BTC-PERP",
                "size": "1",
                "price": "60000",
                "aggressor": "buyer",
            },
            {
                "type": "trade",
                "buyer": "carol",
                "seller": "bob",
                "instrument": "BTC-PERP",
                "size": "2",
                "price": "60000",
                "aggressor": "buyer",
            },
        ],
    ),
    (
        "Alice tries to sell three more calls. Her collateral does not cover the initial margin, so the "
        "engine rejects the fill and says by how much.",
        [
            {
                "type": "trade",
                "buyer": "bob",
                "seller": "alice",
                "instrument": "BTC-25DEC26-60000-C",
                "size": "3",
                "price": "4100",
            },
        ],
    ),
    (
        "BTC jumps 12% and implied vol rises. Short calls lose; see who is now near or past maintenance.",
        [
            {"type": "set_market", "underlying": "BTC", "index": "67200", "vol": "0.75", "rate": "0"},
            {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"},
        ],
    ),
    (
        "Alice is below maintenance. A keeper takes just enough of her book at mark less a 0.75% penalty "
        "(half to the keeper, half to the insurance fund) to leave her 2% above maintenance.",
        [{"type": "start_liquidation", "account": "alice", "liquidator": "keeper"}],
    ),
    (
        "Carol asks for 1,000 USDC out: it is debited at once (if her margin allows) and waits for custody, "
        "which pays it out and settles it with the payout's reference. A replayed deposit reference is refused.",
        [
            {"type": "request_withdrawal", "account": "carol", "asset": "USDC", "amount": "1000"},
            {"type": "settle_withdrawal", "withdrawal": "W1", "reference": "0x9b07:2"},
            {"type": "deposit", "account": "carol", "asset": "USDC", "amount": "10000", "reference": "0x5a20:0"},
        ],
    ),
]
TITLES = {2: "Margin before the move", 4: "Margin after the move", 5: "Margin after the liquidation"}


def run_demo(console: Console, profile: Profile) -> None:
    engine = Engine(profile)
    console.print(Panel.fit(f"margin-engine demo, profile [bold]{profile.name}[/]: {profile.description}"))
    for number, (text, commands) in enumerate(STEPS, start=1):
        console.rule(f"Step {number}")
        console.print(text)
        for obj in commands:
            outcome = engine.submit(obj)
            audit(engine.state)
            if isinstance(outcome, Rejection):
                j = outcome.to_json()
                extra = f" needed {j['needed']}, available {j['available']} {j['asset']}" if "needed" in j else ""
                console.print(f"  [red]rejected[/] {obj['type']}: {outcome.code}:{extra}")
            else:
                console.print(f"  [green]ok[/] {obj['type']} ({len(outcome)} events)")
        if number in TITLES:
            print_margins(console, engine.margins(), title=TITLES[number])
    report = audit(engine.state)["USDC"]
    console.rule("Conservation")
    console.print(
        f"deposits - withdrawals = {report['deposits'] - report['withdrawals']} units = users {report['users']} "
        f"+ insurance {report['insurance']} + fees {report['fees']} + settlement {report['settlement']} "
        f"+ pending withdrawals {report['pending']}"
    )
