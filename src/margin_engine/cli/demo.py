"""The guided demo: what the engine does, on embedded defaults, in a minute of reading."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from margin_engine.cli.render import print_margins
from margin_engine.engine import Engine, Rejection, audit
from margin_engine.engine.describe import describe, rejection_text
from margin_engine.ledger.units import human_amount
from margin_engine.margin.profile import Profile


def steps(profile: Profile) -> list[tuple[str, list[dict]]]:
    """The demo's story under `profile`: Alice and Bob in portfolio margin where the profile has a risk
    matrix, the liquidation by the profile's own mechanism (fixed penalty or Dutch auction)."""
    pooled = "portfolio" if profile.portfolio is not None else "cross"
    pooled_text = (
        "portfolio margin: one risk matrix of spot and vol shocks over their whole book"
        if pooled == "portfolio"
        else "cross margin"
    )
    return [
        (
            "A market, three traders and a keeper. Carol keeps each position apart (isolated margin); Alice and Bob "
            f"pool their collateral ({pooled_text}). Each deposit is credited when custody confirms its transfer "
            "(a chain transaction and log index, here made up), once per reference.",
            [
                {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
                {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6", "rate": "0"},
                {"type": "open_account", "account": "alice", "mode": pooled},
                {"type": "open_account", "account": "bob", "mode": pooled},
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
            "Alice sells Bob two BTC calls and a quarter of a BTC perp; Carol buys two perps from Bob. Every fill "
            "is margin-checked on both sides: a side that adds risk must cover initial margin after it.",
            [
                _trade("bob", "alice", "BTC-25DEC26-60000-C", "2", "4100"),
                {**_trade("bob", "alice", "BTC-PERP", "0.25", "60000"), "aggressor": "buyer"},
                {**_trade("carol", "bob", "BTC-PERP", "2", "60000"), "aggressor": "buyer"},
            ],
        ),
        (
            "Alice tries to sell three more calls. Her collateral does not cover the initial margin, so the "
            "engine rejects the fill and says by how much.",
            [_trade("bob", "alice", "BTC-25DEC26-60000-C", "3", "4100")],
        ),
        (
            "BTC jumps 20% and implied vol rises to 75%. Alice is short calls and short the perp: see who is now "
            "near or past maintenance.",
            [
                {"type": "set_market", "underlying": "BTC", "index": "72000", "vol": "0.75", "rate": "0"},
                {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"},
            ],
        ),
        _liquidation(profile),
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


def _trade(buyer: str, seller: str, instrument: str, size: str, price: str) -> dict:
    return {"type": "trade", "buyer": buyer, "seller": seller, "instrument": instrument, "size": size, "price": price}


def _liquidation(profile: Profile) -> tuple[str, list[dict]]:
    """Alice's liquidation as the profile's mechanism runs it."""
    mechanism = profile.liquidation.mechanism
    if mechanism == "fixed":
        penalty = profile.liquidation.fixed.penalty_ratio
        return (
            "Alice is below maintenance. A keeper takes just enough of her book at mark less a "
            f"{penalty:.2%} penalty (part to the keeper, part to the insurance fund) to bring her back above "
            "maintenance.",
            [{"type": "start_liquidation", "account": "alice", "liquidator": "keeper"}],
        )
    if mechanism == "dutch":
        return (
            "Alice is below maintenance. Her book goes to a Dutch auction whose discount grows with time; five "
            "minutes later the keeper bids for the part that brings her back above maintenance, paying at most "
            "what it names.",
            [
                {"type": "start_liquidation", "account": "alice"},
                {"type": "advance_time", "time": "2026-11-25T08:05:00Z"},
                {"type": "bid", "auction": "L1", "liquidator": "keeper", "fraction": "1", "max_price": "100000"},
            ],
        )
    return (
        "Alice is below maintenance. Her book is offered in a sealed-bid batch auction; the keeper bids and "
        "the batch clears when its window closes.",
        [{"type": "start_liquidation", "account": "alice"}],
    )


TITLES = {2: "Margin before the move", 4: "Margin after the move", 5: "Margin after the liquidation"}


def run_demo(console: Console, profile: Profile) -> None:
    engine = Engine(profile)
    console.print(Panel.fit(f"margin-engine demo, profile [bold]{profile.name}[/]: {profile.description}"))
    for number, (text, commands) in enumerate(steps(profile), start=1):
        console.rule(f"Step {number}")
        console.print(text)
        for obj in commands:
            outcome = engine.submit(obj)
            audit(engine.state)
            if isinstance(outcome, Rejection):
                console.print(f"  [red]rejected[/] {obj['type']}: {escape(rejection_text(outcome))}", highlight=False)
                continue
            console.print(f"  [green]ok[/] {obj['type']}", highlight=False)
            for event in outcome:
                if event.type in _SHOWN:
                    console.print(f"     {escape(describe(event, profile))}", highlight=False)
        if number in TITLES:
            print_margins(console, engine.margins(), title=TITLES[number])
    console.rule("Conservation")
    for asset, row in audit(engine.state).items():
        d = profile.asset(asset).decimals
        held = " + ".join(f"{label} {human_amount(row[key], d, asset)}" for label, key in _HELD)
        moved = human_amount(row["deposits"] - row["withdrawals"], d, asset)
        console.print(f"{asset}: deposits - withdrawals = {moved} = {held}", highlight=False)


_HELD = (
    ("users", "users"),
    ("insurance fund", "insurance"),
    ("fees", "fees"),
    ("settlement", "settlement"),
    ("pending withdrawals", "pending"),
)


# the events a reader of the demo follows; the ledger's transfers behind them are in `run`'s output
_SHOWN = {
    "account_opened",
    "custody_confirmed",
    "trade",
    "market_set",
    "time_advanced",
    "funding_applied",
    "liquidation_started",
    "liquidation_fill",
    "auction_ended",
    "bankruptcy",
    "withdrawal_requested",
    "withdrawal_closed",
}
