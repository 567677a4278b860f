"""A seeded random driver of engine commands: valid, invalid and extreme, with markets that move
violently, liquidations, auctions, bids, ADL and expiries, checked after every command.

After each command: the command's own audit (`audit_events`: money crosses the venue's edge only
as deposits and withdrawals, the fund and the pending account never below zero); the insurance
fund never negative; an accepted withdrawal leaves the account's initial margin covered; a
rejected or unparsable command changes nothing (a cheap fingerprint every time, the full state
every 97th). Every 1,000 commands and at the end, the full conservation audit. At the end, the
journal replays (through JSON) to the same state. Fast enough for 200,000 commands in CI.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine_checks import snapshot

from margin_engine.engine import Engine, Rejection, audit, audit_events, event_from_json, replay
from margin_engine.errors import InputError
from margin_engine.ledger.ledger import INSURANCE, user_key
from margin_engine.margin.profile import Profile

T0 = 1795593600  # 2026-11-25T08:00:00Z
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# the 25th of every month to 2035, 08:00 UTC: options to trade and to settle whatever the clock says
EXPIRIES = {
    f"25{m}{y % 100}": int(datetime(y, i + 1, 25, 8, tzinfo=UTC).timestamp())
    for y in range(2026, 2036)
    for i, m in enumerate(MONTHS)
    if (y, i) >= (2026, 11)
}
BASE = {"BTC": 60000.0, "ETH": 3000.0}
CROSS = ("a0", "a1", "a2", "a3")
ISO = "iso"
PM = "pm"
MAKER = "mm"
KEEPER = "k"
HOSTILE_NUMBERS = (
    "1e400", "-1e400", "1e-400", "Infinity", "NaN", "0x10", "1_000", "", " 5", "١٢", "1" * 40, True, None, [], {},
    "1e30", "-0", 10**40, 1e308,
)  # fmt: skip


@dataclass
class FuzzStats:
    commands: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    input_errors: int = 0
    events: dict[str, int] = field(default_factory=dict)

    def count(self, outcome) -> None:
        self.commands += 1
        if outcome is None:
            self.input_errors += 1
        elif isinstance(outcome, Rejection):
            self.rejected[outcome.code] = self.rejected.get(outcome.code, 0) + 1
        else:
            self.accepted += 1
            for e in outcome:
                self.events[e.type] = self.events.get(e.type, 0) + 1


def _fingerprint(engine: Engine) -> tuple:
    s = engine.state
    return (
        s.revision,
        len(engine.journal),
        s.now_s,
        tuple(map(id, s.markets.values())),
        tuple(s.auctions.items()),
        tuple(s.bankrupt.items()),
        s.liquidations_started,
        len(s.pending_withdrawals),
        len(s.references),
    )


class Fuzzer:
    def __init__(self, profile: Profile, seed: int):
        self.profile = profile
        self.rng = random.Random(seed)
        self.engine = Engine(profile)
        self.stats = FuzzStats()
        self.n = 0
        self.withdrawal_ids = 0
        self.accounts = [*CROSS, ISO, MAKER, KEEPER] + ([PM] if profile.portfolio is not None else [])

    # ---------------------------------------------------------------------------- plumbing

    def submit(self, cmd: dict):
        e = self.engine
        self.n += 1
        deep = self.n % 97 == 0
        before = copy.deepcopy(snapshot(e)) if deep else None
        mark = _fingerprint(e)
        try:
            out = e.submit(cmd)
        except InputError:
            out = None
        except Exception as exc:  # an InvariantViolation or a crash: the fuzz's finding
            raise AssertionError(f"command {self.n} {json.dumps(cmd, default=str)[:400]} raised {exc!r}") from exc
        self.stats.count(out)
        if cmd.get("type") == "open_account" and cmd.get("mode") == "portfolio" and self.profile.portfolio is None:
            # never a silent cross account: portfolio mode needs a profile with portfolio rules
            assert out is None or isinstance(out, Rejection) and out.code in ("mode_unavailable", "account_exists"), (
                f"{cmd} under {self.profile.name}: {out}"
            )
        if out is None or isinstance(out, Rejection):
            assert _fingerprint(e) == mark, f"refused {cmd} changed the state"
            if deep:
                assert snapshot(e) == before, f"refused {cmd} changed the state"
            return out
        audit_events(e.state, out)
        settle = self.profile.settlement_asset
        assert e.state.ledger.balance(INSURANCE, settle) >= 0, f"fund negative after {cmd}"
        if cmd["type"] in ("withdraw", "request_withdrawal"):
            m = e.state.margin(cmd["account"])
            assert m.free_collateral >= 0, f"{cmd} left {cmd['account']} below initial margin: {m}"
        if self.n % 1000 == 0:
            audit(e.state)
        return out

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def number(self, typical: str) -> object:
        """Mostly the typical value, sometimes a hostile one."""
        return self.pick(HOSTILE_NUMBERS) if self.rng.random() < 0.03 else typical

    def index(self, u: str) -> float:
        m = self.engine.state.markets.get(u)
        return m.index if m is not None else BASE[u]

    # ------------------------------------------------------------------------------ set-up

    def start(self) -> None:
        self.submit({"type": "advance_time", "time": T0})
        for u, index in BASE.items():
            self.submit({"type": "set_market", "underlying": u, "index": repr(index), "vol": 0.6})
        for a in self.accounts:
            mode = "isolated" if a == ISO else "portfolio" if a == PM else "cross"
            self.submit({"type": "open_account", "account": a, "mode": mode})
        if self.profile.portfolio is None:  # refused, not opened as a cross account
            refused = self.submit({"type": "open_account", "account": PM, "mode": "portfolio"})
            assert isinstance(refused, Rejection) and refused.code == "mode_unavailable", refused
        deposits = {MAKER: "50000000", KEEPER: "3000000"}
        for a in self.accounts:
            self.submit(
                {"type": "deposit", "account": a, "amount": deposits.get(a, self.pick(["5000", "20000", "80000"]))}
            )
        self.submit({"type": "fund_insurance", "amount": self.pick(["0", "1000", "100000"]) or "1"})

    # ---------------------------------------------------------------------------- commands

    def instrument(self) -> str:
        u = self.pick(["BTC", "BTC", "ETH"])
        if self.rng.random() < 0.55:
            return f"{u}-PERP"
        expiry = self.pick(self.expiries(ahead=True)[:4] or list(EXPIRIES))
        strike = round(BASE[u] * self.pick([0.8, 0.9, 1.0, 1.1, 1.25]) / (1000 if u == "BTC" else 50)) * (
            1000 if u == "BTC" else 50
        )
        return f"{u}-{expiry}-{strike}-{self.pick('CP')}"

    def trade(self) -> dict:
        inst = self.instrument()
        u = inst.split("-")[0]
        size = self.pick(["0.01", "0.1", "0.5", "1", "2", "5", "20", "100", "1000000000"])
        if inst.endswith("PERP"):
            price = self.index(u) * (1 + self.rng.uniform(-0.03, 0.03)) if self.rng.random() < 0.95 else 1e12
        else:
            price = self.index(u) * self.pick([0.001, 0.02, 0.05, 0.1, 0.3, 2.5])
        buyer, seller = (
            self.rng.sample(self.accounts, 2) if self.rng.random() < 0.4 else (self.pick(self.accounts), MAKER)
        )
        if self.rng.random() < 0.5:
            buyer, seller = seller, buyer
        if buyer == seller:
            seller = KEEPER if buyer != KEEPER else MAKER
        return {
            "type": "trade",
            "buyer": buyer,
            "seller": seller,
            "instrument": inst,
            "size": self.number(size),
            "price": self.number(f"{price:.2f}"),
            "aggressor": self.pick(["buyer", "seller", None]),
        }

    def move(self) -> dict:
        u = self.pick(["BTC", "BTC", "ETH"])
        shock = self.pick([-0.5, -0.3, -0.1, -0.03, -0.01, 0.01, 0.03, 0.1, 0.3, 0.6])
        new = min(max(self.index(u) * (1 + shock), BASE[u] * 0.05), BASE[u] * 20)
        vol = self.pick([0.2, 0.6, 1.2, 3.0])
        cmd = {"type": "set_market", "underlying": u, "index": self.number(f"{new:.2f}"), "vol": vol}
        kind = self.pick(["plain", "plain", "perp", "confidence", "stablecoin"])
        if kind == "perp":  # the perp's mark off the index (a hostile 60% is refused)
            cmd["perp"] = self.number(f"{new * (1 + self.pick([-0.6, -0.02, 0.004, 0.03])):.2f}")
        elif kind == "confidence":
            cmd["confidence"] = {"spot": self.pick(["0.2", "0.9"]), "perp": self.pick(["0.4", "1"])}
        elif kind == "stablecoin":
            return {"type": "set_market", "underlying": "USDC", "index": self.pick(["0.95", "0.99", "1", "1.02"])}
        return cmd

    def money(self, kind: str) -> dict:
        a = self.pick(self.accounts + ["ghost"])
        held = self.engine.state.ledger.balance(user_key(a), "USDC") / 1e6
        amount = self.pick([f"{max(held * f, 0.000001):.6f}" for f in (0.1, 0.5, 1.0, 1.5)] + ["1", "1000000000000"])
        cmd = {"type": kind, "account": a, "amount": self.number(amount)}
        if kind == "deposit" and self.rng.random() < 0.1:
            cmd["asset"] = self.pick(["BTC", "ETH", "DOGE"])
            cmd["amount"] = self.pick(["0.5", "3", "10000000000000"])
        return cmd

    def custody(self) -> dict:
        pending = list(self.engine.state.pending_withdrawals)
        w = self.pick(pending) if pending and self.rng.random() < 0.9 else "W999999"
        if self.rng.random() < 0.5:
            self.withdrawal_ids += 1
            ref = f"tx-{self.withdrawal_ids}" if self.rng.random() < 0.95 else "tx-1"
            return {"type": "settle_withdrawal", "withdrawal": w, "reference": ref}
        return {"type": "fail_withdrawal", "withdrawal": w, "reason": "bank holiday"}

    def liquidate(self) -> dict:
        totals = self.engine.margin_totals()
        under = [totals.ids[i] for i in range(len(totals.ids)) if totals.liquidatable[i]]
        account = self.pick(under) if under and self.rng.random() < 0.9 else self.pick(self.accounts)
        cmd = {"type": "start_liquidation", "account": account}
        liquidator = self.pick([KEEPER, KEEPER, MAKER, "a1", None])
        if liquidator and liquidator != account:
            cmd["liquidator"] = liquidator
        return cmd

    def bid(self) -> dict:
        auctions = list(self.engine.state.auctions.values())
        a = self.pick(auctions) if auctions else None
        cmd = {
            "type": "bid",
            "auction": a.id if a else "L1",
            "liquidator": self.pick([KEEPER, KEEPER, MAKER, "a2"]),
            "fraction": self.number(self.pick(["0.05", "0.25", "0.5", "1"])),
        }
        if a is not None and (a.mechanism == "batch" or self.rng.random() < 0.5):
            equity = float(self.engine.state.margin(a.account).equity) / 1e6
            cmd["max_price"] = f"{equity * self.pick([-1.5, -1.0, 0.0, 0.5, 0.8, 1.0, 1.3]):.2f}"
        return cmd

    def clock(self) -> dict:
        now = self.engine.state.now_s or T0
        step = self.pick([1, 10, 10, 60, 60, 600, 600, 3600, 3600, 6 * 3600, 86_400])
        if self.rng.random() < 0.02:
            return {"type": "advance_time", "time": self.pick([now - 1, now + 400 * 86_400, 1795600800000, 10**20])}
        return {"type": "advance_time", "time": now + step}

    def expiries(self, ahead: bool) -> list[str]:
        """Expiry names after (or at and before) the engine's clock, nearest first."""
        now = self.engine.state.now_s or T0
        names = list(EXPIRIES)
        cut = bisect.bisect_right([EXPIRIES[n] for n in names], now)
        return names[cut:] if ahead else names[:cut][::-1]

    def expiry(self) -> dict:
        name = self.pick(self.expiries(ahead=False)[:3] or list(EXPIRIES))
        u = self.pick(["BTC", "ETH"])
        return {"type": "settle_expiry", "underlying": u, "expiry": name, "price": f"{self.index(u):.2f}"}

    def other(self) -> dict:
        kind = self.rng.randrange(5)
        if kind == 0:
            return {
                "type": "apply_funding",
                "instrument": self.pick(["BTC-PERP", "ETH-PERP"]),
                "rate": self.pick(["0.0001", "-0.0003", "0.01"]),
            }
        if kind == 1:
            name = self.pick(list(self.engine.state.accounts[ISO].positions) or ["BTC-PERP"])
            return {
                "type": "allocate",
                "account": ISO,
                "instrument": name,
                "amount": self.pick(["100", "-100", "-100000"]),
            }
        if kind == 2:
            return {"type": "fund_insurance", "amount": self.pick(["10", "5000"])}
        if kind == 3:
            account = self.pick(["a0", "x y", "", "n" * 70, "new", PM])
            return {"type": "open_account", "account": account, "mode": self.pick(["cross", "portfolio"])}
        return {"type": self.pick(["nonsense", "trade", "bid"]), "garbage": self.pick(HOSTILE_NUMBERS)}

    def step(self) -> None:
        r = self.rng.random()
        if r < 0.30:
            cmd = self.trade()
        elif r < 0.45:
            cmd = self.move()
        elif r < 0.52:
            cmd = self.money("deposit")
        elif r < 0.58:
            cmd = self.money(self.pick(["withdraw", "request_withdrawal"]))
        elif r < 0.61:
            cmd = self.custody()
        elif r < 0.71:
            cmd = self.liquidate()
        elif r < 0.79:
            cmd = self.bid()
        elif r < 0.91:
            cmd = self.clock()
        elif r < 0.94:
            cmd = self.expiry()
        else:
            cmd = self.other()
        self.submit(cmd)

    def run(self, commands: int) -> FuzzStats:
        self.start()
        while self.stats.commands < commands:
            self.step()
        audit(self.engine.state)
        return self.stats

    def replays(self) -> None:
        """The journal, through JSON, replays to the same state."""
        e = self.engine
        r = replay(self.profile, [event_from_json(json.loads(json.dumps(x.to_json()))) for x in e.journal])
        twin = Engine(self.profile)
        twin.state, twin.journal = r, e.journal
        assert snapshot(twin) == snapshot(e)


def fuzz_profiles() -> dict[str, Profile]:
    """Every packaged profile, and Derive's with the batch auction (its other mechanism)."""
    from margin_engine.margin.profile import load_profile

    profiles = {name: load_profile(name) for name in ("deribit", "derive", "deribit-pm", "derive-pmrm")}
    derive = profiles["derive"]
    profiles["derive-batch"] = derive.model_copy(
        update={"liquidation": derive.liquidation.model_copy(update={"mechanism": "batch"})}
    )
    return profiles
