"""Random but valid-looking command scripts for the storage tests, from a seeded `random.Random`.

The scripts reach every part of the state a snapshot must carry: accounts in all modes, perps and
options, isolated allocations, signed oracle updates (quotes, marks, medians, volume reports), crashes
that make accounts liquidatable, auctions (fixed, Dutch, batch with sealed bids), funding, settled
expiries and the insurance fund. Many commands are rejected; rejections are journaled too.
"""

from __future__ import annotations

import hashlib
import random
from importlib import resources

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import dump_public_key, sign_update

T0 = 1795593600  # 2026-11-25T08:00:00Z
EXPIRY_S = 1798185600  # 25DEC26 08:00 UTC
SOURCES = ("binance", "coinbase", "kraken")
KEYS = {s: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(s.encode()).digest()) for s in SOURCES}
ACCOUNTS = ("a0", "a1", "a2", "a3")
KEEPER = "keeper"
INDEX = {"BTC": 60000, "ETH": 3000}
OPTIONS = ("BTC-25DEC26-60000-C", "BTC-25DEC26-55000-P", "ETH-25DEC26-3000-C")
MECHANISMS = ("fixed", "dutch", "batch")


def profile_text(mechanism: str = "fixed") -> str:
    """The packaged deribit profile with the test oracle sources registered and the given liquidation mechanism."""
    text = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
    text = text.replace('mechanism = "fixed"', f'mechanism = "{mechanism}"')
    keys = "".join(f'{s} = "{dump_public_key(k.public_key())}"\n' for s, k in KEYS.items())
    return f"{text}\n[oracle.sources]\n{keys}"


def oracle_update(source: str, underlying: str, price: float, t: int, volume=None, confidence=None) -> dict:
    update = PriceUpdate(underlying, source, price, confidence, t, volume)
    cmd = {
        "type": "oracle_update",
        "underlying": underlying,
        "source": source,
        "price": repr(price),
        "timestamp": t,
        "signature": sign_update(KEYS[source], update).hex(),
    }
    if volume is not None:
        cmd["volume"] = repr(volume)
    if confidence is not None:
        cmd["confidence"] = repr(confidence)
    return cmd


def setup(rng: random.Random) -> list[dict]:
    cmds: list[dict] = [{"type": "advance_time", "time": T0}]
    for u, index in INDEX.items():
        cmds.append({"type": "set_market", "underlying": u, "index": str(index), "vol": "0.6"})
    for name in ACCOUNTS:
        # deribit has no portfolio rules (portfolio mode is refused): cross twice keeps the seeded draws as they were
        cmds.append({"type": "open_account", "account": name, "mode": rng.choice(("cross", "isolated", "cross"))})
        cmds.append({"type": "deposit", "account": name, "amount": str(rng.choice((20_000, 60_000, 300_000)))})
    cmds += [
        {"type": "open_account", "account": KEEPER},
        {"type": "deposit", "account": KEEPER, "amount": "5000000"},
        {"type": "fund_insurance", "amount": "100000"},
        {"type": "deposit", "account": "a0", "asset": "BTC", "amount": "0.5"},
    ]
    return cmds


def workload(rng: random.Random, steps: int) -> list[dict]:
    """`setup`, then `steps` random commands; the script keeps its own clock so that oracle updates carry
    timestamps the engine can accept."""
    cmds = setup(rng)
    clock = {"t": T0, "price": dict(INDEX)}
    for _ in range(steps):
        cmds += rng.choice(_STEPS)(rng, clock)
    return cmds


def _deposit(rng, clock):
    return [{"type": "deposit", "account": rng.choice(ACCOUNTS), "amount": str(rng.randint(1, 50_000))}]


def _withdraw(rng, clock):
    return [{"type": "withdraw", "account": rng.choice(ACCOUNTS), "amount": str(rng.randint(1, 40_000))}]


def _trade(rng, clock):
    buyer, seller = rng.sample((*ACCOUNTS, KEEPER), 2)
    if rng.random() < 0.7:
        u = rng.choice(("BTC", "ETH"))
        size = rng.choice(("0.01", "1.5", "5", "12", "25")) if u == "BTC" else str(rng.choice((1, 20, 200)))
        price = f"{clock['price'][u] * (1 + rng.uniform(-0.01, 0.01)):.2f}"
        instrument = f"{u}-PERP"
    else:
        instrument, size, price = rng.choice(OPTIONS), str(rng.randint(1, 10)), str(rng.randint(0, 5000))
    cmd = {"type": "trade", "buyer": buyer, "seller": seller, "instrument": instrument, "size": size, "price": price}
    if rng.random() < 0.5:
        cmd["aggressor"] = rng.choice(("buyer", "seller"))
    return [cmd]


def _move(rng, clock):
    """A market move, by set_market or by all three oracle sources (with volume and confidence now and then)."""
    u = rng.choice(("BTC", "ETH"))
    clock["price"][u] = max(round(clock["price"][u] * (1 + rng.uniform(-0.12, 0.08)), 2), 1.0)
    clock["t"] += rng.choice((1, 10, 30))
    cmds = [{"type": "advance_time", "time": clock["t"]}]
    if rng.random() < 0.3:
        return cmds + [{"type": "set_market", "underlying": u, "index": str(clock["price"][u]), "vol": "0.7"}]
    for source in SOURCES:
        price = clock["price"][u] * (1 + rng.uniform(-0.001, 0.001))
        volume = rng.choice((None, 1.5, 20.0))
        confidence = rng.choice((None, price * 0.001))
        cmds.append(oracle_update(source, u, price, clock["t"], volume, confidence))
    return cmds


def _crash(rng, clock):
    """BTC falls through every source at once (within the jump limit over 30 s); keepers start on every
    account and bid for whatever auctions are open, and the clock moves on a little (batch windows close)."""
    clock["price"]["BTC"] = round(clock["price"]["BTC"] * rng.uniform(0.86, 0.95), 2)
    clock["t"] += 30
    cmds = [{"type": "advance_time", "time": clock["t"]}]
    cmds += [oracle_update(s, "BTC", clock["price"]["BTC"], clock["t"], 3.0) for s in SOURCES]
    cmds += [_liquidate(rng, clock)[0] for _ in range(3)]
    cmds += [_bid(rng, clock)[0] for _ in range(rng.randint(0, 3))]
    clock["t"] += rng.choice((1, 11))
    return cmds + [{"type": "advance_time", "time": clock["t"]}]


def _advance(rng, clock):
    clock["t"] += rng.choice((0, 5, 20, 900, 86400, 31 * 86400))
    return [{"type": "advance_time", "time": clock["t"]}]


def _liquidate(rng, clock):
    return [{"type": "start_liquidation", "account": rng.choice(ACCOUNTS), "liquidator": KEEPER}]


def _bid(rng, clock):
    cmd = {
        "type": "bid",
        "auction": f"L{rng.randint(1, 6)}",
        "liquidator": rng.choice((KEEPER, "a3")),
        "fraction": rng.choice(("0.25", "0.5", "1")),
    }
    if rng.random() < 0.7:
        cmd["max_price"] = str(rng.randint(-20_000, 60_000))
    return [cmd]


def _funding(rng, clock):
    return [{"type": "apply_funding", "instrument": rng.choice(("BTC-PERP", "ETH-PERP")), "rate": "0.0001"}]


def _settle(rng, clock):
    return [{"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": str(clock["price"]["BTC"])}]


def _allocate(rng, clock):
    amount = rng.choice(("1000", "-500"))
    return [{"type": "allocate", "account": rng.choice(ACCOUNTS), "instrument": "BTC-PERP", "amount": amount}]


_STEPS = (
    _deposit,
    _withdraw,
    _trade,
    _trade,
    _trade,
    _move,
    _move,
    _advance,
    _crash,
    _crash,
    _liquidate,
    _bid,
    _bid,
    _funding,
    _settle,
    _allocate,
)
