"""Liquidation flows through the engine, with hand-worked numbers.

Units: USDC has 6 decimals, so 1 USDC = 1_000_000 units (`U`). Every expected amount is derived in a
comment from the published formulas (docs/liquidation.md, REFERENCE.md "Liquidation"):

- fixed (Deribit, `deribit` profile): the liquidator takes f of every position at mark; the penalty
  is 0.75% of the notional taken, rounded up, half (rounded down) to the liquidator and the rest to
  the insurance fund; f is the smallest share with E - f C >= (1+b) x the requirement left, which
  for g = 1 - f is g (M - Q) + g^2 Q + H: Q = 0.005% x size^2 x index the perp size add-on, H the
  collateral haircut plus 2 units of slack for rounding; b = 0.02, C = 0.75% x gross notional
  (with Q = 0: f = ((1+b)(M+H) - E) / ((1+b)M - C)); sizes rounded up to the 8-decimal size step.
- Dutch (Lyra v2, `derive` profile), in Lyra's signed convention MtM = equity, MM = equity -
  requirement, BM = MM + (MM - MtM) x 0.15; d(t) = 0.95 -> 0.70 over 15 min, -> 0 over 12 h;
  f_max = BM / (BM - MtM d); insolvent payment |MtM| -> |MM| over 60 min.
- batch (sealed bids): one uniform price, the marginal level's; the lot is the share that
  restores the 2% buffer at mark; reserve = MtM - 0.30 |MtM| for the lot.
- waterfall: insurance fund, then ADL (deribit) or a socialized loss by largest remainder (derive).
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from engine_checks import ok, rejected, snapshot
from typer.testing import CliRunner

from margin_engine.cli.app import app
from margin_engine.engine import Engine, Rejection, audit
from margin_engine.engine.isolated_markets import withdrawal_gate
from margin_engine.ledger.ledger import INSURANCE, allocation_key, user_key
from margin_engine.margin.profile import OracleConfig, load_profile
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import dump_public_key, sign_update

U = 1_000_000  # USDC units per USDC
T0 = 1795593600  # 2026-11-25T08:00:00Z
DERIBIT = load_profile("deribit")
DERIVE = load_profile("derive")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEP = Decimal("0.00000001")  # BTC size step (size_decimals = 8)


def gated(e) -> bool:
    """Withdrawals of the cross pool wait (every account of these books is in it)."""
    return withdrawal_gate(e.state, "maker") is not None


def with_liquidation(profile, **changes):
    """A profile with `liquidation` fields replaced; nested sections given as dicts."""
    liq = profile.liquidation
    update = {}
    for key, value in changes.items():
        update[key] = getattr(liq, key).model_copy(update=value) if isinstance(value, dict) else value
    return profile.model_copy(update={"liquidation": liq.model_copy(update=update)})


BATCH = with_liquidation(DERIVE, mechanism="batch")


# ----------------------------------------------------------------------------------------- helpers


def user(engine: Engine, account: str, asset: str = "USDC") -> int:
    return engine.state.ledger.balance(user_key(account), asset)


def insurance(engine: Engine) -> int:
    return engine.state.ledger.balance(INSURANCE, "USDC")


def size(engine: Engine, account: str, instrument: str = "BTC-PERP") -> Decimal:
    p = engine.state.accounts[account].positions.get(instrument)
    return Decimal(0) if p is None else p.size


def margin(engine: Engine, account: str):
    return next(m for m in engine.margins() if m.id == account)


def of_type(events, kind):
    return [ev for ev in events if ev.type == kind]


def transfers(events, reason):
    return [(ev.debit, ev.credit, ev.amount_units) for ev in events if ev.type == "transfer" and ev.reason == reason]


def trade(buyer, seller, qty, price, instrument="BTC-PERP") -> dict:
    return {
        "type": "trade",
        "buyer": buyer,
        "seller": seller,
        "instrument": instrument,
        "size": str(qty),
        "price": str(price),
    }


def market(index, underlying="BTC") -> dict:
    return {"type": "set_market", "underlying": underlying, "index": str(index), "vol": "0.6"}


def at(seconds: int) -> dict:
    return {"type": "advance_time", "time": T0 + seconds}


def start(account, liquidator=None) -> dict:
    cmd = {"type": "start_liquidation", "account": account}
    if liquidator:
        cmd["liquidator"] = liquidator
    return cmd


def bid(auction, liquidator, fraction, max_price=None) -> dict:
    cmd = {"type": "bid", "auction": auction, "liquidator": liquidator, "fraction": str(fraction)}
    if max_price is not None:
        cmd["max_price"] = str(max_price)
    return cmd


def withdraw(account, amount) -> dict:
    return {"type": "withdraw", "account": account, "asset": "USDC", "amount": str(amount)}


def book(profile, deposits: dict, insurance_fund=None, modes=None) -> Engine:
    """Clock at T0, BTC at 60,000, accounts opened in order with their USDC deposits."""
    e = Engine(profile)
    ok(e, at(0))
    ok(e, market(60000))
    for account, amount in deposits.items():
        ok(e, {"type": "open_account", "account": account, "mode": (modes or {}).get(account, "cross")})
        if amount:
            ok(e, {"type": "deposit", "account": account, "asset": "USDC", "amount": str(amount)})
    if insurance_fund:
        ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": str(insurance_fund)})
    return e


def ceil8(x: Decimal) -> Decimal:
    """Round a size up to the 8-decimal step (what close_size does)."""
    return x.quantize(STEP, rounding=ROUND_CEILING)


def close_fraction(
    equity_units: int, mm_units: int, gross_units: int, add_on=0.0, penalty=0.0075, b=0.02, haircut=0.0
) -> float:
    """1 - the largest root in [0, 1] of s(g) = E - (1-g) C - (1+b)(g (M-Q) + g^2 Q + H), M = MM - H,
    Q = add_on, H = haircut + 2 units, C = penalty x gross notional, in USD floats (numpy's roots)."""
    e, h = equity_units / U, haircut + 2 / U
    mm, c = mm_units / U - haircut, gross_units / U * penalty
    roots = np.roots([-(1 + b) * add_on, c - (1 + b) * (mm - add_on), e - c - (1 + b) * h])
    g = max(r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and -1e-12 <= r.real <= 1 + 1e-12)
    return min(max(1.0 - g, 0.0), 1.0)


def penalty_split(notional_units: int, ratio=Fraction(75, 10_000), share=Fraction(1, 2)):
    """(penalty, liquidator, insurance): penalty rounded up, the liquidator's half rounded down."""
    penalty = math.ceil(notional_units * ratio)
    keeper = math.floor(penalty * (1 - share))
    return penalty, keeper, penalty - keeper


# ============================================================================ fixed penalty (deribit)


def partial_book(keeper_deposit=1_000_000) -> Engine:
    """examples/liquidation-partial.jsonl: a 10 BTC long perp bought at 60,000 with 13,000 USDC."""
    e = book(DERIBIT, {"trader": 13_000, "maker": 1_000_000, "keeper": keeper_deposit}, insurance_fund=5_000)
    ok(e, trade("trader", "maker", 10, 60000))
    return e


def test_not_liquidatable_is_rejected_with_needed_and_available():
    e = partial_book()
    ok(e, market(59400))
    # equity = 13,000 + 10 x (59,400 - 60,000) = 7,000
    # MM = 10 x 59,400 x (1% + 0.005% x 10) = 594,000 x 1.05% = 6,237 <= 7,000: not liquidatable
    r = rejected(e, start("trader", "keeper"), "not_liquidatable")
    assert (r.account, r.needed, r.available) == ("trader", 6_237 * U, 7_000 * U)
    assert r.to_json()["needed"] == "6237.000000" and r.to_json()["available"] == "7000.000000"


def test_fixed_partial_steps_follow_the_closed_form():
    e = partial_book()
    ok(e, market(59300))

    # ---- step 1 at 59,300, worked by hand
    # E = 13,000 + 10 x (59,300 - 60,000) = 6,000; M = 593,000 x 1.05% = 6,226.50 (> E: liquidatable)
    m = margin(e, "trader")
    assert (m.equity, m.maintenance_margin) == (6_000 * U, 6_226_500_000)
    # of which the size add-on Q = 0.005% x 10^2 x 59,300 = 296.50; C = 0.75% x 593,000 = 4,447.50;
    # H = 2 units. s(g) = 6,000 - (1 - g) 4,447.50 - 1.02 (5,930 g + 296.50 g^2 + 0.000002)
    #   = 1,552.49999796 - 1,601.10 g - 302.43 g^2, so
    # g = (sqrt(1,601.10^2 + 4 x 302.43 x 1,552.49999796) - 1,601.10) / 604.86 and f = 1 - g = 0.16275979...
    out = ok(e, start("trader", "keeper"))
    (fill,) = of_type(out, "liquidation_fill")
    assert (fill.auction, fill.mechanism, fill.liquidator) == ("L1", "fixed", "keeper")
    g = (math.sqrt(1_601.1**2 + 4 * 302.43 * 1_552.49999796) - 1_601.1) / 604.86
    assert float(fill.fraction) == pytest.approx(1 - g, rel=1e-9)
    # (the linear rule, ignoring that the add-on shrinks too, closed 351.03 / 1,903.53 = 0.1844)
    # moved: 10 x 0.16275979616... rounded up to the step -> 1.62759797
    assert size(e, "keeper") == Decimal("1.62759797")
    assert size(e, "trader") == Decimal("8.37240203")
    # taken at mark: notional 1.62759797 x 59,300 = 96,516.559621; the trader realizes
    # its loss on the part closed: -(60,000 - 59,300) x 1.62759797 = -1,139.318579
    assert transfers(out, "realized_pnl") == [(user_key("trader"), "settlement", 1_139_318_579)]
    # penalty = ceil(0.0075 x 96,516,559,621 units) = ceil(723,874,197.16) = 723,874,198
    # keeper floor(723,874,198 / 2) = 361,937,099; insurance the other 361,937,099
    assert (fill.penalty_units, fill.insurance_fee_units) == (723_874_198, 361_937_099)
    assert transfers(out, "liquidation_penalty") == [
        (user_key("trader"), user_key("keeper"), 361_937_099),
        (user_key("trader"), INSURANCE, 361_937_099),
    ]
    # trader cash 13,000 - 1,139.318579 - 723.874198 = 11,136.807223
    assert user(e, "trader") == 11_136_807_223
    # equity 6,000 - 723.874198 = 5,276.125802 (the take at mark moves no value)
    m = margin(e, "trader")
    assert m.equity == 5_276_125_802
    # MM left = 8.37240203 x 59,300 x (1% + 0.005% x 8.37240203) = 5,172.672352: the buffer exactly
    assert m.maintenance_margin == 5_172_672_352 and not m.liquidatable
    assert m.equity >= 1.02 * m.maintenance_margin and m.equity / m.maintenance_margin == pytest.approx(1.02, abs=1e-8)

    # ---- steps 2 and 3: the same closed form on each pre-liquidation state
    # step 2 at 59,240: E = 11,136.807223 + 8.37240203 x (59,240 - 60,000) = 4,773.781680
    #   M = 495,981.096257 x (1% + 0.005% x 8.37240203) = 5,167.438620, Q = 0.005% x 8.37240203^2 x 59,240
    #   = 207.628...; f = 0.292215; moved ceil(8.37240203 x f) = 2.44653851; penalty 1,086.997060
    # step 3 at 59,180: E = 3,331.232808, M = 3,610.833857; f = 0.312527; moved 1.85199397;
    #   penalty 822.007524: keeper 411.003762, fund 411.003762
    pinned = {
        2: (4_773_781_680, 5_167_438_620, 0.2922146470670609, Decimal("5.92586352"), 1_086_997_060),
        3: (3_331_232_808, 3_610_833_857, 0.31252727358269417, Decimal("4.07386955"), 822_007_524),
    }
    keeper_total, insurance_total = 361_937_099, 361_937_099
    for number, index in ((2, "59240"), (3, "59180")):
        ok(e, market(index))
        m = margin(e, "trader")
        assert m.liquidatable
        equity, mm, fraction, left, penalty = pinned[number]
        assert (m.equity, m.maintenance_margin) == (equity, mm)
        held = size(e, "trader")
        gross = int((held * Decimal(index) * U).to_integral_value())  # |size| x index, half-even
        f = close_fraction(m.equity, m.maintenance_margin, gross, add_on=0.00005 * float(held) ** 2 * float(index))
        out = ok(e, start("trader", "keeper"))
        (fill,) = of_type(out, "liquidation_fill")
        assert fill.auction == f"L{number}"
        assert float(fill.fraction) == pytest.approx(f, rel=1e-12)
        assert float(fill.fraction) == pytest.approx(fraction, rel=1e-12)
        moved = ceil8(held * fill.fraction)
        assert size(e, "trader") == held - moved == left
        assert fill.penalty_units == penalty
        notional = int((moved * Decimal(index) * U).to_integral_value())
        penalty, keeper, fund = penalty_split(notional)
        assert (fill.penalty_units, fill.insurance_fee_units) == (penalty, fund)
        assert transfers(out, "liquidation_penalty") == [
            (user_key("trader"), user_key("keeper"), keeper),
            (user_key("trader"), INSURANCE, fund),
        ]
        keeper_total += keeper
        insurance_total += fund
        after = margin(e, "trader")
        # only the penalty leaves the account (to a unit: equity is floored before and after)
        assert abs(after.equity - (m.equity - penalty)) <= 1
        assert after.equity >= 1.02 * after.maintenance_margin

    # the example's end state: 4.07386955 BTC left; keeper +1,316.439391; fund 5,000 + 1,316.439391
    assert size(e, "trader") == Decimal("4.07386955")
    assert size(e, "keeper") == Decimal("5.92613045")
    assert (keeper_total, insurance_total) == (1_316_439_391, 1_316_439_391)
    assert user(e, "keeper") == 1_000_000 * U + keeper_total
    assert insurance(e) == 5_000 * U + insurance_total


def test_whale_size_add_on_raises_the_ratio_and_the_fraction():
    # 500 BTC long at 60,000 with 1,400,000 USDC: IM = 30,000,000 x (2% + 0.005% x 500) = 1,350,000
    e = book(DERIBIT, {"whale": 1_400_000, "small": 28_000, "maker": 100_000_000, "keeper": 100_000_000})
    ok(e, trade("whale", "maker", 500, 60000))
    # the same leverage on 10 BTC: 28,000 / 600,000 = 1,400,000 / 30,000,000 = 4.67%
    ok(e, trade("small", "maker", 10, 60000))
    ok(e, market(59200))
    # small: equity 28,000 - 8,000 = 20,000 against MM 592,000 x 1.05% = 6,216: safe
    r = rejected(e, start("small", "keeper"), "not_liquidatable")
    assert (r.needed, r.available) == (6_216 * U, 20_000 * U)
    # whale: maintenance ratio 1% + 0.005% x 500 = 3.5%; MM = 29,600,000 x 3.5% = 1,036,000
    # E = 1,400,000 - 500 x 800 = 1,000,000 < 1,036,000: liquidatable
    m = margin(e, "whale")
    assert (m.equity, m.maintenance_margin) == (1_000_000 * U, 1_036_000 * U)
    out = ok(e, start("whale", "keeper"))
    (fill,) = of_type(out, "liquidation_fill")
    # C = 0.75% x 29,600,000 = 222,000; of M, the add-on is Q = 0.005% x 500^2 x 59,200 = 740,000
    # s(g) = 1,000,000 - (1 - g) 222,000 - 1.02 (296,000 g + 740,000 g^2 + 0.000002)
    #      = 777,999.99999796 - 79,920 g - 754,800 g^2
    g = (math.sqrt(79_920**2 + 4 * 754_800 * 777_999.99999796) - 79_920) / (2 * 754_800)
    assert float(fill.fraction) == pytest.approx(1 - g, rel=1e-12)
    assert float(fill.fraction) == pytest.approx(0.0363098, abs=1e-7)
    # the linear rule, which ignores that the add-on shrinks as the size does, would close
    # (1.02 x 1,036,000 - 1,000,000) / (1.02 x 1,036,000 - 222,000) = 56,720 / 834,720 = 0.0680: 87% more
    moved = ceil8(500 * fill.fraction)
    assert size(e, "keeper") == moved == Decimal("18.15489226")
    notional = int((moved * 59200 * U).to_integral_value())
    penalty, keeper, fund = penalty_split(notional)
    assert (fill.penalty_units, fill.insurance_fee_units) == (penalty, fund)
    after = margin(e, "whale")
    # what is left stands on the buffer, not above it: equity / MM = 1.02
    assert after.equity >= 1.02 * after.maintenance_margin
    assert after.equity / after.maintenance_margin == pytest.approx(1.02, abs=1e-8)


def test_keeper_is_margin_checked():
    e = partial_book(keeper_deposit=1_000)
    ok(e, market(59300))
    # the keeper would take 1.62759797 BTC (notional 96,516.559621) and get 361.937099 of penalty:
    # IM = 96,516.559621 x (2% + 0.005% x 1.62759797) = 1,938.19... > equity 1,361.937099
    r = rejected(e, start("trader", "keeper"), "insufficient_margin")
    assert r.account == "keeper"
    notional = Decimal("96516.559621")
    im = notional * (Decimal("0.02") + Decimal("0.00005") * Decimal("1.62759797"))
    assert r.needed == int((im * U).to_integral_value(rounding=ROUND_CEILING))
    assert r.available == 1_000 * U + 361_937_099
    # a keeper with enough collateral then liquidates as usual
    ok(e, {"type": "deposit", "account": "keeper", "asset": "USDC", "amount": "10000"})
    ok(e, start("trader", "keeper"))


def test_fixed_needs_a_liquidator_and_rejects_unknown_and_self():
    e = partial_book()
    ok(e, market(59300))
    rejected(e, start("trader"), "liquidator_required")
    rejected(e, start("trader", "nobody"), "unknown_account")
    rejected(e, start("ghost", "keeper"), "unknown_account")
    rejected(e, bid("L1", "keeper", 1), "unknown_auction")  # a fixed liquidation leaves no auction


@pytest.mark.parametrize(("profile", "index"), [(DERIBIT, 59300), (DERIVE, 57000)], ids=["deribit", "derive"])
def test_isolated_position_liquidated_with_the_fixed_mechanism(profile, index):
    e = book(profile, {"iso": 10_000, "maker": 1_000_000, "keeper": 1_000_000}, modes={"iso": "isolated"})
    ok(e, market(3000, "ETH"))
    ok(e, trade("iso", "maker", 1, 60000))
    ok(e, trade("iso", "maker", 10, 3000, "ETH-PERP"))
    btc_key, eth_key = allocation_key("iso", "BTC-PERP"), allocation_key("iso", "ETH-PERP")
    p = profile.underlying("BTC").perp
    # allocations: the initial margin each fill lacked, moved from the free pool
    btc_alloc = e.state.ledger.balance(btc_key, "USDC")
    eth_alloc = e.state.ledger.balance(eth_key, "USDC")
    eth_quote = e.state.accounts["iso"].positions["ETH-PERP"].quote
    free = user(e, "iso")
    ok(e, market(index))
    m = margin(e, "iso")
    btc = next(x for x in m.positions if x.instrument == "BTC-PERP")
    eth = next(x for x in m.positions if x.instrument == "ETH-PERP")
    assert btc.liquidatable and not eth.liquidatable
    if profile is DERIVE:
        rejected(e, start("iso"), "liquidator_required")  # even under the Dutch mechanism
    out = ok(e, start("iso", "keeper"))
    assert of_type(out, "liquidation_started") == []  # no auction: fixed, at once
    (fill,) = of_type(out, "liquidation_fill")
    assert fill.mechanism == "fixed" and fill.liquidator == "keeper"
    # the position stands alone: E = allocation + value; M = its own MM
    # deribit: allocation 60,000 x 2.005% = 1,203, E = 1,203 - 700 = 503, M = 59,300 x 1.005% = 595.965
    #   of which the add-on Q = 0.005% x 1^2 x 59,300 = 2.965; C = 0.75% x 59,300 = 444.75; H = 2 units:
    #   s(g) = 503 - (1 - g) 444.75 - 1.02 (593 g + 2.965 g^2 + 0.000002) = 58.24999796 - 160.11 g - 3.0243 g^2
    # derive: allocation 10% x 60,000 = 6,000, E = 6,000 - 3,000 = 3,000, M = 6.5% x 57,000 = 3,705, no add-on:
    #   f = (1.02 x (3,705 + 0.000002) - 3,000) / (1.02 x 3,705 - 427.5) = 779.10000204 / 3,351.6 = 0.23245...
    deribit_g = (math.sqrt(160.11**2 + 4 * 3.0243 * 58.24999796) - 160.11) / (2 * 3.0243)
    by_hand = {59300: 1 - deribit_g, 57000: 779.10000204 / 3_351.6}[index]
    equity = btc_alloc + (index - 60000) * U
    mm = round(index * (p.mm_ratio + p.size_ratio_per_unit * 1) * U)
    f = close_fraction(equity, mm, index * U, add_on=p.size_ratio_per_unit * index)
    assert f == pytest.approx(by_hand, rel=1e-9)
    assert float(fill.fraction) == pytest.approx(f, rel=1e-9)
    moved = ceil8(Decimal(repr(float(fill.fraction))))
    assert size(e, "keeper") == moved and size(e, "iso") == 1 - moved
    notional = int((moved * index * U).to_integral_value())
    penalty, keeper, fund = penalty_split(notional)
    assert (fill.penalty_units, fill.insurance_fee_units) == (penalty, fund)
    # the loss realized and the penalty come out of the position's own collateral
    realized = int((moved * (60000 - index) * U).to_integral_value())
    assert e.state.ledger.balance(btc_key, "USDC") == btc_alloc - realized - penalty
    assert transfers(out, "liquidation_penalty") == [
        (btc_key, user_key("keeper"), keeper),
        (btc_key, INSURANCE, fund),
    ]
    # the free pool and the ETH position (its size, quote and collateral) are untouched
    assert user(e, "iso") == free
    assert e.state.ledger.balance(eth_key, "USDC") == eth_alloc
    assert e.state.accounts["iso"].positions["ETH-PERP"].quote == eth_quote and size(e, "iso", "ETH-PERP") == 10
    pos = next(x for x in margin(e, "iso").positions if x.instrument == "BTC-PERP")
    assert not pos.liquidatable


def test_fixed_liquidation_of_collateral_only_account_restores_it():
    e = book(DERIBIT, {"trader": 0, "maker": 1_000_000, "keeper": 1_000_000})
    ok(e, {"type": "deposit", "account": "trader", "asset": "BTC", "amount": "1"})
    ok(e, trade("trader", "maker", 10, 60000))  # IM 12,300 against 0.90 x 60,000 of BTC
    ok(e, market(57000))
    ok(e, trade("maker", "trader", 10, 57000))  # closed: realized -30,000, a USDC debt
    assert user(e, "trader") == -30_000 * U and e.state.accounts["trader"].positions == {}
    ok(e, market(31000))
    # equity = 31,000 - 30,000 = 1,000 < MM = BTC haircut 5% x 31,000 = 1,550
    m = margin(e, "trader")
    assert (m.equity, m.maintenance_margin, m.liquidatable) == (1_000 * U, 1_550 * U, True)
    out = ok(e, start("trader", "keeper"))
    (fill,) = of_type(out, "liquidation_fill")
    # something must be taken (the BTC against the debt) and the account restored
    assert transfers(out, "liquidation") != []
    assert not margin(e, "trader").liquidatable


def test_isolated_negative_free_pool_is_resolved_or_rejected():
    e = book(DERIBIT, {"iso": 2_000, "maker": 1_000_000, "keeper": 1_000_000}, modes={"iso": "isolated"})
    ok(e, market(3000, "ETH"))
    ok(e, trade("iso", "maker", 1, 60000))  # allocation 1,203
    ok(e, trade("iso", "maker", 1, 3000, "ETH-PERP"))  # allocation 60.012
    ok(e, market(58000))
    ok(e, trade("maker", "iso", 1, 58000))  # closed at -2,000: 1,203 from the allocation, 797 from the pool
    # free pool 2,000 - 1,203 - 60.012 - 797 = -60.012, the ETH position holds 60.012
    assert user(e, "iso") == -60_012_000
    m = margin(e, "iso")
    assert m.liquidatable and not any(p.liquidatable for p in m.positions)
    out = e.submit(start("iso", "keeper"))
    audit(e.state)
    # either refused, or the pool is made whole (from the position's collateral, or by closing it)
    assert isinstance(out, Rejection) or not margin(e, "iso").liquidatable


# ======================================================================== the loss waterfall (fixed)


def adl_book(profile=DERIBIT, insurance_fund=1_000, third_short=False) -> Engine:
    """examples/liquidation-adl.jsonl: a 10 BTC long (13,000 USDC) against two shorts, BTC gaps to 58,000."""
    deposits = {"trader": 13_000, "short1": 20_000, "short2": 100_000, "keeper": 1_000_000}
    if third_short:
        deposits |= {"short3": 100_000, "other": 1_000_000}
    e = book(profile, deposits, insurance_fund=insurance_fund)
    ok(e, trade("trader", "short1", 6, 60000))
    ok(e, trade("trader", "short2", 4, 60000))
    if third_short:
        ok(e, trade("other", "short3", 5, 60000))
    ok(e, market(58000))
    return e


def test_insolvent_account_drawn_on_the_insurance_fund_ends_at_zero():
    e = adl_book(insurance_fund=10_000)
    # equity = 13,000 + 10 x (58,000 - 60,000) = -7,000: bankrupt; the fund (10,000) covers it all
    assert margin(e, "trader").equity == -7_000 * U
    out = ok(e, start("trader", "keeper"))
    # the keeper takes the 10 BTC at mark (58,000): the trader realizes -20,000
    assert transfers(out, "realized_pnl") == [(user_key("trader"), "settlement", 20_000 * U)]
    assert size(e, "keeper") == 10 and e.state.accounts["trader"].positions == {}
    assert transfers(out, "insurance") == [(INSURANCE, user_key("trader"), 7_000 * U)]
    (b,) = of_type(out, "bankruptcy")
    assert (b.account, b.deficit_units, b.insurance_units) == ("trader", 7_000 * U, 7_000 * U)
    assert (b.adl_units, b.socialized_units, b.uncovered_units) == (0, 0, 0)
    assert of_type(out, "deleveraged") == []
    (fill,) = of_type(out, "liquidation_fill")
    assert (fill.fraction, fill.penalty_units) == (1, 0)  # no penalty from an account worth nothing
    assert user(e, "trader") == 0  # 13,000 - 20,000 + 7,000
    assert insurance(e) == 3_000 * U
    assert user(e, "keeper") == 1_000_000 * U and margin(e, "keeper").equity == 1_000_000 * U
    assert not gated(e)
    ok(e, withdraw("short1", 1))


def test_insurance_too_small_then_adl_ranked_by_profit_times_leverage():
    e = adl_book()
    out = ok(e, start("trader", "keeper"))
    # deficit 7,000; the fund pays its 1,000; ADL the other 6,000 at the bankruptcy price
    # score = (uPnL / entry notional) x (notional / equity):
    #   short1: (12,000 / 360,000) x (348,000 / 32,000) = 0.3625
    #   short2: ( 8,000 / 240,000) x (232,000 / 108,000) = 0.0716
    # short1 first (6 lots), then short2 (4 lots); charges 6,000 x 6/10 = 3,600 and 6,000 x 4/10 = 2,400
    dl = of_type(out, "deleveraged")
    assert [(d.counterparty, d.size, d.loss_units) for d in dl] == [("short1", 6, 3_600 * U), ("short2", 4, 2_400 * U)]
    assert transfers(out, "adl") == [
        (user_key("short1"), user_key("trader"), 3_600 * U),
        (user_key("short2"), user_key("trader"), 2_400 * U),
    ]
    assert transfers(out, "insurance") == [(INSURANCE, user_key("trader"), 1_000 * U)]
    (b,) = of_type(out, "bankruptcy")
    assert (b.deficit_units, b.insurance_units, b.adl_units, b.socialized_units, b.uncovered_units) == (
        7_000 * U,
        1_000 * U,
        6_000 * U,
        0,
        0,
    )
    # per account, to the unit: shorts realize their profit at mark and give up the charge
    assert user(e, "short1") == 20_000 * U + 12_000 * U - 3_600 * U  # 28,400
    assert user(e, "short2") == 100_000 * U + 8_000 * U - 2_400 * U  # 105,600
    assert user(e, "trader") == 0 and insurance(e) == 0
    assert user(e, "keeper") == 1_000_000 * U and size(e, "keeper") == 0  # nothing left for the keeper
    assert all(size(e, a) == 0 for a in ("trader", "short1", "short2"))


def test_adl_ranking_decides_who_is_deleveraged():
    # a third short of 5 BTC (100,000 USDC): score (10,000 / 300,000) x (290,000 / 110,000) = 0.0879,
    # above short2's 0.0716: the 10 bankrupt lots go to short1 (6) and short3 (4); short2 keeps its 4
    e = adl_book(third_short=True)
    out = ok(e, start("trader", "keeper"))
    dl = of_type(out, "deleveraged")
    assert [(d.counterparty, d.size, d.loss_units) for d in dl] == [("short1", 6, 3_600 * U), ("short3", 4, 2_400 * U)]
    assert size(e, "short2") == -4 and size(e, "short3") == -1
    # short3 realizes 4 x 2,000 = 8,000 on the part closed and pays 2,400
    assert user(e, "short3") == 100_000 * U + 8_000 * U - 2_400 * U
    assert user(e, "short2") == 100_000 * U


def test_adl_in_pieces_leaves_the_bankrupt_account_at_exactly_zero():
    e = book(DERIBIT, {"trader": 13_000, "long1": 5_000, "long2": 5_000, "mm": 20_000_000, "keeper": 5_000})
    ok(e, market(3000, "ETH"))
    ok(e, trade("mm", "trader", "108.311671", 3000, "ETH-PERP"))
    ok(e, trade("long1", "mm", "41.658335", 3000, "ETH-PERP"))
    ok(e, trade("long2", "mm", "41.658335", 3000, "ETH-PERP"))
    ok(e, market("3185.70", "ETH"))
    # equity = 13,000 - 108.311671 x 185.70 = 13,000 - 20,113.4773047 -> floor -7,113.477305
    assert margin(e, "trader").equity == -7_113_477_305
    out = ok(e, start("trader", "keeper"))
    # ADL against long1, long2 (41.658335 each) and mm (24.995001): each piece realizes its loss
    # rounded half-even: 41.658335 x 185.70 = 7,735.9528095 -> 7,735.952810 (twice, the ties go up),
    # 24.995001 x 185.70 = 4,641.5716857 -> 4,641.571686; total 20,113.477306, one unit more than
    # the deficit ADL was sized for (7,113.477305); the last counterparty charged settles that unit
    (b,) = of_type(out, "bankruptcy")
    assert (b.deficit_units, b.adl_units, b.uncovered_units) == (7_113_477_306, 7_113_477_306, 0)
    assert [d.counterparty for d in of_type(out, "deleveraged")] == ["long1", "long2", "mm"]
    assert user(e, "trader") == 0


def test_socialized_loss_instead_of_adl():
    e = adl_book(profile=with_liquidation(DERIBIT, waterfall={"mode": "socialized"}))
    out = ok(e, start("trader", "keeper"))
    assert of_type(out, "deleveraged") == []
    # the keeper takes the 10 BTC at mark; the fund pays 1,000; 6,000 is spread over the depositors'
    # USDC balances (the bankrupt excluded): short1 20,000, short2 100,000, keeper 1,000,000 (1,120,000)
    #   short1 6,000 x 20 / 1,120 = 107.142857|142 -> 107,142,857 units (remainder .142)
    #   short2 6,000 x 100 / 1,120 = 535.714285|714 -> 535,714,285 (remainder .714)
    #   keeper 6,000 x 1,000 / 1,120 = 5,357.142857|142 -> 5,357,142,857 (remainder .142)
    # floors add to 5,999,999,999: the unit left goes to the largest remainder, short2
    assert sorted(transfers(out, "socialized_loss")) == [
        (user_key("keeper"), user_key("trader"), 5_357_142_857),
        (user_key("short1"), user_key("trader"), 107_142_857),
        (user_key("short2"), user_key("trader"), 535_714_286),
    ]
    (b,) = of_type(out, "bankruptcy")
    assert (b.deficit_units, b.insurance_units, b.adl_units, b.socialized_units, b.uncovered_units) == (
        7_000 * U,
        1_000 * U,
        0,
        6_000 * U,
        0,
    )
    assert user(e, "trader") == 0
    assert user(e, "short1") == 20_000 * U - 107_142_857
    assert user(e, "short2") == 100_000 * U - 535_714_286
    assert user(e, "keeper") == 1_000_000 * U - 5_357_142_857
    assert size(e, "keeper") == 10 and size(e, "short1") == -6  # the shorts keep their positions


def test_uncovered_deficit_gates_withdrawals_until_resolved_again():
    # derive's waterfall is socialized; an isolated long (fixed mechanism) gaps -40% and the
    # depositors' balances cannot pay it all
    e = book(DERIVE, {"iso": 7_000, "maker": 7_000, "keeper": 5_000}, modes={"iso": "isolated"})
    # allocation 10% x 60,000 = 6,000; free pool 1,000 (the maker's IM is 6,000 of its 7,000)
    ok(e, trade("iso", "maker", 1, 60000))
    ok(e, market(36000))
    # loss 24,000 against 6,000 + 1,000: deficit 17,000; no fund; balances maker 7,000 + keeper 5,000
    # = 12,000 socialized, 5,000 uncovered (the keeper takes 1 BTC at 36,000: IM 3,600 <= 5,000)
    out = ok(e, start("iso", "keeper"))
    (b,) = of_type(out, "bankruptcy")
    assert (b.deficit_units, b.insurance_units, b.socialized_units, b.uncovered_units) == (
        17_000 * U,
        0,
        12_000 * U,
        5_000 * U,
    )
    assert user(e, "iso") == -5_000 * U and user(e, "maker") == 0 and user(e, "keeper") == 0
    assert gated(e)
    rejected(e, {"type": "deposit", "account": "ghost", "asset": "USDC", "amount": "1"}, "unknown_account")
    ok(e, {"type": "deposit", "account": "maker", "asset": "USDC", "amount": "10"})
    rejected(e, withdraw("maker", 1), "withdrawals_gated")
    # the fund is refilled and the account resolved again: the gate opens
    ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": "20000"})
    out = ok(e, start("iso", "keeper"))
    (b,) = of_type(out, "bankruptcy")
    assert (b.deficit_units, b.insurance_units, b.uncovered_units) == (5_000 * U, 5_000 * U, 0)
    assert user(e, "iso") == 0 and not gated(e)
    ok(e, withdraw("maker", 1))


# ================================================================================= Dutch (derive)


def dutch_book(index, profile=DERIVE, insurance_fund=50_000) -> Engine:
    """examples/liquidation-dutch-*.jsonl: a 10 BTC long perp bought at 60,000 with 65,000 USDC
    (IM 10% x 600,000 = 60,000); MtM = 65,000 + 10 x (index - 60,000), requirement 6.5% x 10 x index."""
    e = book(profile, {"trader": 65_000, "maker": 1_000_000, "keeper": 1_000_000}, insurance_fund=insurance_fund)
    ok(e, trade("trader", "maker", 10, 60000))
    ok(e, market(index))
    return e


def test_dutch_solvent_auction_at_five_minutes():
    e = dutch_book(54000)
    # MtM = 65,000 + 10 x (54,000 - 60,000) = 5,000; requirement 6.5% x 540,000 = 35,100
    # Lyra: MM = 5,000 - 35,100 = -30,100 < 0 and MtM > 0: a solvent auction
    out = ok(e, start("trader"))
    (s,) = of_type(out, "liquidation_started")
    assert (s.auction, s.account, s.mechanism, s.phase, s.time_s) == ("L1", "trader", "dutch", "solvent", T0)
    assert e.state.auctions["L1"].phase == "solvent" and not gated(e)
    ok(e, at(300))
    # d(300) = 0.95 - 0.25 x 300 / 900 = 0.866667
    d = 0.95 - 0.25 * 300 / 900
    # BM = MM + (MM - MtM) x 0.15 = -30,100 - 35,100 x 0.15 = -35,365
    bm = -30_100 + (-30_100 - 5_000) * 0.15
    assert bm == -35_365
    # f_max = BM / (BM - MtM d) = 35,365 / (35,365 + 4,333.33) = 0.890843
    f_max = bm / (bm - 5_000 * d)
    out = ok(e, bid("L1", "keeper", 1, max_price=10_000))
    (fill,) = of_type(out, "liquidation_fill")
    assert float(fill.fraction) == pytest.approx(f_max, rel=1e-12)
    assert float(fill.fraction) == pytest.approx(0.8908434443091648, rel=1e-12)
    # the bidder pays f x MtM x d = 0.890843 x 4,333.33 = 3,860.321593 (rounded up)
    assert fill.paid_units == math.ceil(f_max * 5_000 * d * U) == 3_860_321_593
    # 10% of its discount f x MtM x (1 - d) = 593.90 goes to the insurance fund: 59.389563 (up)
    assert fill.insurance_fee_units == math.ceil(0.10 * f_max * 5_000 * (1 - d) * U) == 59_389_563
    # the bidder gets f of the positions at mark (8.90843445 BTC, rounded up) and f x MtM in value
    # for what it pays: trader -> keeper floor(f x 5,000) - paid = 4,454.217221 - 3,860.321593
    assert size(e, "keeper") == ceil8(10 * fill.fraction) == Decimal("8.90843445")
    assert transfers(out, "liquidation") == [(user_key("trader"), user_key("keeper"), 593_895_628)]
    assert transfers(out, "liquidation_fee") == [(user_key("keeper"), INSURANCE, 59_389_563)]
    assert insurance(e) == 50_000 * U + 59_389_563
    # the auction ends: the account is restored (BM back to ~0, equity 4,406.104372)
    (end,) = of_type(out, "auction_ended")
    assert (end.auction, end.reason) == ("L1", "restored") and e.state.auctions == {}
    m = margin(e, "trader")
    assert m.equity == 5_000 * U - 593_895_628 and not m.liquidatable
    assert m.equity >= 1.15 * m.maintenance_margin - 1  # BM >= 0 within a unit
    # net for the keeper: f x MtM - paid - fee = 4,454.217221 - 3,860.321593 - 59.389563
    assert margin(e, "keeper").equity == 1_000_000 * U + 593_895_628 - 59_389_563


def lyra_profile():
    # Lyra's published case: bufferMarginPercentage 5%, starting at 80% of MtM, no fee, no cutoff.
    # Its account has MtM 30 and a requirement of 51.75; mainnet's 6.5% perp maintenance ratio cannot
    # make 51.75 exactly from any 8-decimal size (51.75 / 0.065 = 796.1538... USD of notional), so the
    # case is replayed with a 5% maintenance ratio (0.01725 BTC x 60,000 x 5% = 51.75); IM stays 10%
    perps = {
        name: u.model_copy(update={"perp": u.perp.model_copy(update={"mm_ratio": 0.05})})
        for name, u in DERIVE.underlyings.items()
    }
    return with_liquidation(
        DERIVE.model_copy(update={"underlyings": perps}),
        dutch={
            "start_discount": 0.8,
            "buffer_margin_ratio": 0.05,
            "insurance_share": 0.0,
            "small_account_cutoff_units": 0,
        },
    )


def lyra_book() -> Engine:
    """Lyra's case at the engine level: a short perp with MtM 30 and MM -21.75 (requirement 51.75).
    0.01725 BTC short at 56,000 with 99 USDC (IM 10% x 966 = 96.60); at 60,000:
    MtM = 99 - 0.01725 x 4,000 = 30 and requirement 5% x 0.01725 x 60,000 = 51.75."""
    e = book(lyra_profile(), {"trader": 99, "maker": 1_000_000, "keeper": 1_000_000})
    ok(e, market(56000))
    ok(e, trade("maker", "trader", "0.01725", 56000))
    ok(e, market(60000))
    m = margin(e, "trader")
    assert (m.equity, m.maintenance_margin) == (30 * U, 51_750_000)
    ok(e, start("trader"))
    return e


def test_lyra_published_case_at_the_engine_level():
    e = lyra_book()
    out = ok(e, bid("L1", "keeper", 1))
    (fill,) = of_type(out, "liquidation_fill")
    # BM = -21.75 + (-21.75 - 30) x 0.05 = -24.3375 (Lyra: -24.33); d = 0.8 at t = 0
    # f_max = 24.3375 / (24.3375 + 30 x 0.8) = 0.50349... (Lyra: 0.5034)
    assert float(fill.fraction) == pytest.approx(24.3375 / 48.3375, rel=1e-12)
    assert int(fill.fraction * 10_000) == 5034
    # pays f x 30 x 0.8 = 12.0838 (rounded up)
    assert fill.paid_units == math.ceil(24.3375 / 48.3375 * 24 * U)
    assert of_type(out, "auction_ended")[0].reason == "restored"


def test_lyra_two_bids_reserve_the_first_bidders_cash():
    e = lyra_book()
    out = ok(e, bid("L1", "keeper", "0.1"))
    (first,) = of_type(out, "liquidation_fill")
    # 10% of the account for 10% of 30 x 0.8 = 2.4 USDC; the account keeps 2.4 as reserved cash
    assert (first.fraction, first.paid_units) == (Decimal("0.1"), 2_400_000)
    assert e.state.auctions["L1"].reserved == 2_400_000
    assert size(e, "keeper") == Decimal("-0.001725")
    m = margin(e, "trader")
    # MtM = 27 + 2.4 = 29.4; requirement 0.9 x 51.75 = 46.575
    assert (m.equity, m.maintenance_margin) == (29_400_000, 46_575_000)
    out = ok(e, bid("L1", "keeper", 1))
    (second,) = of_type(out, "liquidation_fill")
    # BM = -17.175 - 46.575 x 0.05 = -19.50375; f = 19.50375 / (19.50375 + 29.4 x 0.8 + 2.4 x 0.2)
    #   = 0.44832... (Lyra: 4483); pays f x (29.4 - 2.4) x 0.8 = 9.683786 (up)
    assert int(second.fraction * 10_000) == 4483
    assert second.paid_units == 9_683_786
    assert of_type(out, "auction_ended")[0].reason == "restored"
    assert not margin(e, "trader").liquidatable


@pytest.mark.parametrize(
    ("minutes", "payment"),
    [
        (0, 15_000 * U),  # |MtM|
        (15, 23_450 * U),  # 15,000 + 33,800 x 1/4
        (30, 31_900 * U),  # 15,000 + 33,800 x 1/2 (the example)
        (60, 48_800 * U),  # |MM|
        (90, 48_800 * U),  # capped at |MM|
    ],
)
def test_dutch_insolvent_payment_grows_from_mtm_to_mm(minutes, payment):
    e = dutch_book(52000)
    # MtM = 65,000 - 80,000 = -15,000; requirement 6.5% x 520,000 = 33,800; MM = -48,800: insolvent auction
    out = ok(e, start("trader"))
    assert of_type(out, "liquidation_started")[0].phase == "insolvent"
    assert gated(e)
    rejected(e, withdraw("maker", 1), "withdrawals_gated")
    ok(e, at(60 * minutes))
    rejected(e, withdraw("maker", 1), "withdrawals_gated")
    out = ok(e, bid("L1", "keeper", 1))
    (fill,) = of_type(out, "liquidation_fill")
    assert (fill.fraction, fill.paid_units, fill.insurance_fee_units) == (1, -payment, 0)
    # the keeper takes the 10 BTC at mark, covers the account's -15,000, and is paid by the fund
    assert transfers(out, "liquidation") == [(user_key("keeper"), user_key("trader"), 15_000 * U)]
    assert transfers(out, "insurance") == [(INSURANCE, user_key("keeper"), payment)]
    assert of_type(out, "auction_ended")[0].reason == "taken"
    assert user(e, "trader") == 0 and e.state.accounts["trader"].positions == {}
    assert size(e, "keeper") == 10
    assert user(e, "keeper") == 1_000_000 * U - 15_000 * U + payment
    assert insurance(e) == 50_000 * U - payment
    assert of_type(out, "bankruptcy") == []  # nothing left to resolve
    assert not gated(e)
    ok(e, withdraw("maker", 1))


def test_dutch_insolvent_partial_bid_keeps_the_gate_until_taken():
    e = dutch_book(52000)
    ok(e, start("trader"))
    ok(e, at(1800))
    out = ok(e, bid("L1", "keeper", "0.5"))
    (fill,) = of_type(out, "liquidation_fill")
    # half of 31,900 = 15,950 to the keeper, who covers half of the -15,000 and takes 5 BTC
    assert fill.paid_units == -15_950 * U
    assert transfers(out, "liquidation") == [(user_key("keeper"), user_key("trader"), 7_500 * U)]
    assert size(e, "keeper") == 5 and of_type(out, "auction_ended") == []
    rejected(e, withdraw("maker", 1), "withdrawals_gated")
    # 30 minutes later (elapsed 60 min): MtM -7,500, requirement 6.5% x 260,000 = 16,900 -> |MM| = 24,400
    ok(e, at(3600))
    out = ok(e, bid("L1", "keeper", 1))
    assert of_type(out, "liquidation_fill")[0].paid_units == -24_400 * U
    # the fund: 50,000 - 15,950 - 24,400 = 9,650
    assert user(e, "trader") == 0 and insurance(e) == 50_000 * U - 15_950 * U - 24_400 * U == 9_650 * U
    ok(e, withdraw("maker", 1))


def test_socialized_top_up_of_the_insurance_fund():
    # examples/liquidation-socialized.jsonl: the fund holds 5,000 and must pay 31,900
    e = dutch_book(52000, insurance_fund=5_000)
    ok(e, start("trader"))
    rejected(e, withdraw("maker", 1), "withdrawals_gated")
    ok(e, at(1800))
    out = ok(e, bid("L1", "keeper", 1))
    # 26,900 short, spread over USDC balances at that moment: maker 1,000,000, keeper 985,000
    # (after covering the account's 15,000); the trader holds 0. Total 1,985,000:
    #   maker 26,900 x 200 / 397 = 13,551.637279|597 -> 13,551,637,279 (remainder .597)
    #   keeper 26,900 x 197 / 397 = 13,348.362720|403 -> 13,348,362,720 (remainder .403)
    # floors add to 26,899,999,999: the last unit to the maker
    assert sorted(transfers(out, "socialized_loss")) == [
        (user_key("keeper"), INSURANCE, 13_348_362_720),
        (user_key("maker"), INSURANCE, 13_551_637_280),
    ]
    assert transfers(out, "insurance") == [(INSURANCE, user_key("keeper"), 31_900 * U)]
    assert insurance(e) == 0
    assert user(e, "maker") == 1_000_000 * U - 13_551_637_280
    assert user(e, "keeper") == 1_000_000 * U - 15_000 * U - 13_348_362_720 + 31_900 * U
    assert user(e, "trader") == 0
    ok(e, withdraw("maker", 1))
    assert user(e, "maker") == 986_448_362_720 - U


def test_solvent_auction_left_alone_restarts():
    e = dutch_book(54000)
    ok(e, start("trader"))
    # 15 min + 12 h = 44,100 s: the price reaches 0 and the auction restarts at the top
    out = ok(e, at(44_099))
    assert of_type(out, "auction_phase_changed") == []
    out = ok(e, at(44_100))
    (change,) = of_type(out, "auction_phase_changed")
    assert (change.auction, change.phase, change.time_s) == ("L1", "solvent", T0 + 44_100)
    assert e.state.auctions["L1"].phase_started_s == T0 + 44_100
    # a bid now pays d = 0.95 again: f_max = 35,365 / (35,365 + 5,000 x 0.95) = 35,365 / 40,115 = 0.881590
    out = ok(e, bid("L1", "keeper", 1))
    (fill,) = of_type(out, "liquidation_fill")
    assert float(fill.fraction) == pytest.approx(35_365 / 40_115, rel=1e-12)
    # pays f x 4,750 = 4,187.554531 (rounded up)
    assert fill.paid_units == math.ceil(35_365 / 40_115 * 5_000 * 0.95 * U) == 4_187_554_531


def test_solvent_auction_turned_insolvent_by_a_gap_changes_phase():
    e = dutch_book(54000)
    ok(e, start("trader"))
    ok(e, market(52000))  # MtM 65,000 - 80,000 = -15,000
    rejected(e, bid("L1", "keeper", 1), "auction_ended")  # the solvent price no longer applies
    out = ok(e, at(60))
    (change,) = of_type(out, "auction_phase_changed")
    assert (change.phase, change.time_s) == ("insolvent", T0 + 60)
    assert gated(e)
    out = ok(e, bid("L1", "keeper", 1))
    assert of_type(out, "liquidation_fill")[0].paid_units == -15_000 * U  # |MtM| at the phase's start


def test_dutch_rejections():
    e = dutch_book(54000)
    ok(e, start("trader"))
    rejected(e, start("trader"), "auction_active")
    rejected(e, bid("L7", "keeper", 1), "unknown_auction")
    rejected(e, bid("L1", "trader", 1), "self_liquidation")
    rejected(e, bid("L1", "ghost", 1), "unknown_account")
    ok(e, at(300))
    # the whole account costs 5,000 x 0.866667 = 4,333.33 now: above a 4,000 limit
    r = rejected(e, bid("L1", "keeper", 1, max_price=4_000), "price_above_limit")
    assert "4333.33" in r.message
    ok(e, bid("L1", "keeper", "0.1", max_price=4_334))


def test_dutch_bidder_is_margin_checked():
    e = dutch_book(54000)
    ok(e, {"type": "open_account", "account": "poor"})
    ok(e, {"type": "deposit", "account": "poor", "asset": "USDC", "amount": "1000"})
    ok(e, start("trader"))
    # at t = 0, f_max = 35,365 / (35,365 + 4,750) = 0.881590: taking 8.8159043 BTC needs
    # 10% x 8.8159043 x 54,000 = 47,606 of initial margin, against 1,000 + what the fill hands it
    r = rejected(e, bid("L1", "poor", 1), "insufficient_margin")
    assert r.account == "poor"


def test_auction_ended_when_the_account_recovered():
    e = dutch_book(54000)
    ok(e, start("trader"))
    # at 58,000: MtM = 45,000, requirement 37,700, BM = 7,300 - 37,700 x 0.15 = 1,645 >= 0
    ok(e, market(58000))
    rejected(e, bid("L1", "keeper", 1), "auction_ended")
    out = ok(e, at(1))
    assert [(x.auction, x.reason) for x in of_type(out, "auction_ended")] == [("L1", "restored")]
    rejected(e, bid("L1", "keeper", 1), "unknown_auction")


def test_no_dutch_fill_on_an_account_back_above_maintenance():
    e = dutch_book(54000)
    ok(e, start("trader"))
    # at 57,500: MtM = 40,000 >= requirement 37,375 (not liquidatable), BM = 2,625 - 5,606.25 < 0
    ok(e, market(57500))
    assert not margin(e, "trader").liquidatable
    rejected(e, bid("L1", "keeper", 1), "auction_ended")


# ================================================================================= batch (derive)


def batch_book(index=54000, bidders=("k1", "k2", "k3"), insurance_fund=50_000) -> Engine:
    """dutch_book's account under the batch mechanism: at 54,000 MtM 5,000, requirement 35,100."""
    deposits = {"trader": 65_000, "maker": 1_000_000} | {b: 1_000_000 for b in bidders}
    e = book(BATCH, deposits, insurance_fund=insurance_fund)
    ok(e, trade("trader", "maker", 10, 60000))
    ok(e, market(index))
    return e


# the solvent lot at 54,000 restores the 2% buffer even when sold at the reserve price, i.e. at a
# cost of reserve_discount x MtM: f = (1.02 x 35,100 - 5,000) / (1.02 x 35,100 - 0.30 x 5,000)
#   = 30,802 / 34,302 = 0.897965...
LOT = 30_802 / 34_302
# the lot's value floor(f x 5,000) = 4,489.825666; reserve ceil(0.7 x 4,489.825666) = 3,142.877967
LOT_VALUE = 4_489_825_666
RESERVE = 3_142_877_967


def test_batch_starts_with_a_lot_and_a_reserve():
    e = batch_book()
    out = ok(e, start("trader"))
    (s,) = of_type(out, "liquidation_started")
    assert (s.mechanism, s.phase, s.closes_at_s) == ("batch", "solvent", T0 + 10)
    assert float(s.fraction) == pytest.approx(LOT, rel=1e-12)
    assert s.reserve_price_units == RESERVE
    rejected(e, bid("L1", "k1", 1), "max_price_required")
    ok(e, bid("L1", "k1", 1, max_price=3_200))
    rejected(e, bid("L1", "k1", 1, max_price=3_300), "duplicate_bid")
    out = ok(e, at(5))  # the window is still open: nothing clears
    assert of_type(out, "liquidation_fill") == [] and "L1" in e.state.auctions


def test_batch_clears_at_one_uniform_price():
    e = batch_book()
    ok(e, start("trader"))
    ok(e, bid("L1", "k1", "0.5", max_price=4_200))
    ok(e, bid("L1", "k2", "0.5", max_price=3_800))
    ok(e, bid("L1", "k3", "0.5", max_price=3_200))
    out = ok(e, at(10))
    # ranked by price: k1 (4,200) fills half, k2 (3,800) the other half; k3 is not reached.
    # everyone pays the marginal level's price, 3,800 for the whole lot: 0.5 x 3,800 = 1,900 each
    fills = of_type(out, "liquidation_fill")
    assert [(f.liquidator, f.paid_units) for f in fills] == [("k1", 1_900 * U), ("k2", 1_900 * U)]
    for f in fills:
        assert float(f.fraction) == pytest.approx(0.5 * LOT, rel=1e-12)  # half of the lot, of the account
    assert of_type(out, "auction_ended")[0].reason == "cleared"
    assert size(e, "k3") == 0 and user(e, "k3") == 1_000_000 * U
    # each winner gets its share of the account's value for what it pays:
    # floor(0.5 f x 5,000) - 1,900 = 2,244.912833 - 1,900 = 344.912833
    value = math.floor(float(fills[0].fraction) * 5_000 * U)
    assert value == 2_244_912_833
    assert transfers(out, "liquidation") == [
        (user_key("trader"), user_key("k1"), value - 1_900 * U),
        (user_key("trader"), user_key("k2"), value - 1_900 * U),
    ]


def test_batch_each_winner_gets_its_share_of_the_positions():
    e = batch_book()
    ok(e, start("trader"))
    ok(e, bid("L1", "k1", "0.5", max_price=4_200))
    ok(e, bid("L1", "k2", "0.5", max_price=3_800))
    out = ok(e, at(10))
    share = of_type(out, "liquidation_fill")[0].fraction  # 0.5 x 0.897965 = 0.448983 of the account
    # each takes 10 x 0.448983 = 4.48982567 BTC (rounded up; the second's share of what the first
    # left, share / (1 - share), may round one step lower); the trader keeps (1 - f) x 10 = 1.02
    assert size(e, "k1") == ceil8(10 * share) == Decimal("4.48982567")
    assert ceil8(10 * share) - STEP <= size(e, "k2") <= ceil8(10 * share)
    assert size(e, "trader") == 10 - size(e, "k1") - size(e, "k2")
    assert abs(size(e, "trader") - 10 * (1 - Decimal(repr(LOT)))) <= 2 * STEP


def test_batch_sold_at_the_reserve_still_restores_the_buffer():
    e = batch_book()
    ok(e, start("trader"))
    ok(e, bid("L1", "k1", 1, max_price=Decimal(RESERVE) / U))
    out = ok(e, at(10))
    assert of_type(out, "liquidation_fill")[0].paid_units == RESERVE
    # equity 5,000 - 4,489.825666 + 3,142.877967 = 3,653.052301 against MM (1 - f) x 35,100 = 3,581.42
    # (x 1.02 = 3,653.05: the buffer, as the lot was sized)
    m = margin(e, "trader")
    assert m.equity == 5_000 * U - LOT_VALUE + RESERVE
    assert m.equity >= 1.02 * m.maintenance_margin and not m.liquidatable


def test_batch_bid_order_does_not_matter():
    bids = [("k1", "0.6", 3_900), ("k2", "0.6", 3_900), ("k3", "1", 3_200)]
    results = []
    for order in (bids, bids[::-1]):
        e = batch_book()
        ok(e, start("trader"))
        for who, fraction, price in order:
            ok(e, bid("L1", who, fraction, max_price=price))
        out = ok(e, at(10))
        # one level at 3,900 wants 1.2 of the lot: shared pro rata, 0.5 each, at 3,900; k3 not reached
        assert sorted((f.liquidator, f.paid_units) for f in of_type(out, "liquidation_fill")) == [
            ("k1", 1_950 * U),
            ("k2", 1_950 * U),
        ]
        results.append(snapshot(e) | {"journal": None})
    assert results[0] == results[1]


def test_batch_reserve_not_met_is_unsold():
    e = batch_book()
    ok(e, start("trader"))
    before = (user(e, "trader"), size(e, "trader"))
    ok(e, bid("L1", "k1", 1, max_price=3_000))  # below the 3,142.877967 reserve
    out = ok(e, at(10))
    assert of_type(out, "liquidation_fill") == []
    assert [(x.auction, x.reason) for x in of_type(out, "auction_ended")] == [("L1", "unsold")]
    assert (user(e, "trader"), size(e, "trader")) == before and e.state.auctions == {}
    out = ok(e, start("trader"))  # still liquidatable: a new auction
    assert of_type(out, "liquidation_started")[0].auction == "L2"


def test_batch_winner_that_cannot_margin_is_dropped_and_the_rest_recleared():
    e = batch_book(bidders=("rich",))
    ok(e, {"type": "open_account", "account": "poor"})
    ok(e, {"type": "deposit", "account": "poor", "asset": "USDC", "amount": "20000"})
    ok(e, start("trader"))
    ok(e, bid("L1", "poor", 1, max_price=4_000))
    ok(e, bid("L1", "rich", 1, max_price=3_500))
    out = ok(e, at(10))
    # poor wins the whole lot at 4,000 but cannot margin 8.98 BTC (IM 10% x 484,901 = 48,490
    # against 20,000 + 490): dropped; rich clears alone at its own 3,500
    assert [(f.liquidator, f.paid_units) for f in of_type(out, "liquidation_fill")] == [("rich", 3_500 * U)]
    assert user(e, "poor") == 20_000 * U and size(e, "poor") == 0
    assert size(e, "rich") == ceil8(10 * Decimal(repr(LOT)))
    assert of_type(out, "auction_ended")[0].reason == "cleared"


def test_batch_insolvent_lot_is_paid_for_by_the_fund():
    e = batch_book(index=52000)
    out = ok(e, start("trader"))
    (s,) = of_type(out, "liquidation_started")
    # MtM 65,000 - 80,000 = -15,000: the whole account, reserve -15,000 - 0.3 x 15,000 = -19,500
    # (at most 19,500 paid)
    assert (s.phase, s.fraction, s.reserve_price_units) == ("insolvent", 1, -19_500 * U)
    assert gated(e)
    ok(e, bid("L1", "k1", 1, max_price=-21_000))  # asks too much: below the reserve
    ok(e, bid("L1", "k2", 1, max_price=-18_000))
    out = ok(e, at(10))
    (fill,) = of_type(out, "liquidation_fill")
    assert (fill.liquidator, fill.paid_units) == ("k2", -18_000 * U)
    assert transfers(out, "liquidation") == [(user_key("k2"), user_key("trader"), 15_000 * U)]
    assert transfers(out, "insurance") == [(INSURANCE, user_key("k2"), 18_000 * U)]
    # the fund: 50,000 - 18,000
    assert user(e, "trader") == 0 and insurance(e) == 32_000 * U
    assert not gated(e)


def test_batch_insolvent_lot_nobody_takes_is_offered_again_and_keeps_withdrawals_gated():
    # the same -15,000 account; no bid in the window: the lot is offered again at once (L2), so the
    # deficit stays open and the makers cannot withdraw the cash the fund may need
    e = batch_book(index=52000)
    ok(e, start("trader"))
    out = ok(e, at(10))
    assert [(x.auction, x.reason) for x in of_type(out, "auction_ended")] == [("L1", "unsold")]
    (again,) = of_type(out, "liquidation_started")
    assert (again.auction, again.phase, again.reserve_price_units, again.closes_at_s) == (
        "L2",
        "insolvent",
        -19_500 * U,
        T0 + 20,
    )
    assert gated(e)
    rejected(e, withdraw("maker", 1_000), "withdrawals_gated")
    ok(e, bid("L2", "k2", 1, max_price=-18_000))
    ok(e, at(20))
    assert not gated(e) and user(e, "trader") == 0


# oracle keys for the stale-feed case (the sweep skips auctions on a stale mark)
SOURCES = ("binance", "coinbase", "kraken")
KEYS = {s: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(s.encode()).digest()) for s in SOURCES}


def signed(source, price, t):
    u = PriceUpdate("BTC", source, price, None, t)
    return {
        "type": "oracle_update",
        "underlying": "BTC",
        "source": source,
        "price": repr(price),
        "timestamp": t,
        "signature": sign_update(KEYS[source], u).hex(),
    }


def test_batch_bid_after_the_window_is_rejected():
    profile = BATCH.model_copy(
        update={"oracle": OracleConfig(sources={s: dump_public_key(k.public_key()) for s, k in KEYS.items()})}
    )
    e = book(profile, {"trader": 65_000, "maker": 1_000_000, "k1": 1_000_000, "k2": 1_000_000})
    ok(e, trade("trader", "maker", 10, 60000))
    for s in SOURCES:
        ok(e, signed(s, 54000.0, T0))  # batch_book's account: MtM 5,000, reserve 3,142.877967
    ok(e, start("trader"))
    ok(e, bid("L1", "k1", 1, max_price=3_500))
    # the feed goes stale (60 s): the clock passes the window but the batch waits for a fresh mark
    out = ok(e, at(61))
    assert of_type(out, "liquidation_fill") == [] and "L1" in e.state.auctions
    rejected(e, bid("L1", "k2", 1, max_price=4_000), "auction_closed")
    for s in SOURCES:
        ok(e, signed(s, 54000.0, T0 + 61))
    out = ok(e, at(62))
    assert [(f.liquidator, f.paid_units) for f in of_type(out, "liquidation_fill")] == [("k1", 3_500 * U)]


# ======================================================================== the example scripts (CLI)

runner = CliRunner()

EXPECTED = {
    "liquidation-partial.jsonl": ("deribit", ["not_liquidatable"], {"liquidation_fill": 3}),
    "liquidation-adl.jsonl": ("deribit", [], {"deleveraged": 2, "bankruptcy": 1, "liquidation_fill": 1}),
    "liquidation-dutch-solvent.jsonl": (
        "derive",
        [],
        {"liquidation_started": 1, "liquidation_fill": 1, "auction_ended": 1},
    ),
    "liquidation-dutch-insolvent.jsonl": (
        "derive",
        ["withdrawals_gated"],
        {"liquidation_started": 1, "liquidation_fill": 1, "auction_ended": 1},
    ),
    "liquidation-socialized.jsonl": (
        "derive",
        ["withdrawals_gated"],
        {"liquidation_started": 1, "liquidation_fill": 1, "auction_ended": 1},
    ),
}


def test_every_liquidation_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("liquidation-*.jsonl")) == sorted(EXPECTED)


def run_example(name):
    profile, _, _ = EXPECTED[name]
    result = runner.invoke(app, ["run", str(EXAMPLES / name), "--profile", profile, "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    usdc = out["conservation"]["USDC"]
    held = sum(Decimal(usdc[k]) for k in ("users", "insurance", "fees", "settlement"))
    assert held == Decimal(usdc["deposits"]) - Decimal(usdc["withdrawals"])
    events = [ev for r in out["results"] for ev in r.get("events", [])]
    return out, events


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_with_the_expected_events(name):
    out, events = run_example(name)
    profile, codes, counts = EXPECTED[name]
    assert out["profile"] == profile
    assert [r["rejection"]["code"] for r in out["results"] if "rejection" in r] == codes
    for kind, n in counts.items():
        assert sum(ev["type"] == kind for ev in events) == n, kind


def test_example_numbers():
    _, ev = run_example("liquidation-partial.jsonl")
    assert [x["penalty_units"] for x in ev if x["type"] == "liquidation_fill"][0] == 723_874_198
    _, ev = run_example("liquidation-adl.jsonl")
    assert [(x["counterparty"], x["loss_units"]) for x in ev if x["type"] == "deleveraged"] == [
        ("short1", 3_600 * U),
        ("short2", 2_400 * U),
    ]
    (b,) = [x for x in ev if x["type"] == "bankruptcy"]
    assert (b["deficit_units"], b["insurance_units"], b["adl_units"], b["uncovered_units"]) == (
        7_000 * U,
        1_000 * U,
        6_000 * U,
        0,
    )
    out, ev = run_example("liquidation-dutch-solvent.jsonl")
    (fill,) = [x for x in ev if x["type"] == "liquidation_fill"]
    # test_dutch_solvent_auction_at_five_minutes's numbers
    assert (fill["paid_units"], fill["insurance_fee_units"]) == (3_860_321_593, 59_389_563)
    assert [x["reason"] for x in ev if x["type"] == "auction_ended"] == ["restored"]
    out, ev = run_example("liquidation-dutch-insolvent.jsonl")
    (fill,) = [x for x in ev if x["type"] == "liquidation_fill"]
    assert (fill["paid_units"], fill["paid"]) == (-31_900 * U, "-31900.000000")  # readers get both
    assert out["state"]["insurance_fund"] == {"USDC": "18100.000000"}  # 50,000 - 31,900
    assert out["results"][-1]["events"][0]["reason"] == "withdrawal"  # the gate opened
    out, ev = run_example("liquidation-socialized.jsonl")
    # test_socialized_top_up_of_the_insurance_fund's numbers
    assert sorted(x["amount_units"] for x in ev if x["type"] == "transfer" and x["reason"] == "socialized_loss") == [
        13_348_362_720,
        13_551_637_280,
    ]
    assert out["state"]["insurance_fund"] == {}


def test_an_isolated_deficit_claims_the_free_pool_before_a_withdrawal_can():
    """Issue 12's case: 10 BTC isolated long with 12,300 allocated (IM 600,000 x 2.05%) and 7,700 free;
    BTC gaps to 58,000, the position is 20,000 down: 7,700 past its collateral. The free pool owes that
    to the position, so nothing is free to withdraw, and the liquidation charges the fund nothing."""
    deposits = {"iso": 20_000, "maker": 10_000_000, "keeper": 1_000_000}
    e = book(load_profile("deribit"), deposits, modes={"iso": "isolated"})
    ok(e, trade("iso", "maker", 10, 60000))
    assert e.state.ledger.balance(allocation_key("iso", "BTC-PERP"), "USDC") == 12_300 * U
    assert user(e, "iso") == 7_700 * U
    ok(e, market(58000))
    m = margin(e, "iso")
    assert (m.equity, m.free_collateral, m.liquidatable) == (0, 0, True)  # free was 7,700 before the rule
    for amount in (7_700, 1):
        rejected(e, withdraw("iso", amount), "insufficient_margin")
    fund = insurance(e)
    events = ok(e, start("iso", "keeper"))
    assert insurance(e) >= fund and not transfers(events, "insurance")  # the free pool paid the deficit
    assert user(e, "iso") == 0 and not e.state.accounts["iso"].positions


def test_a_dutch_insolvent_bid_the_fund_cannot_pay_is_refused_and_the_fund_never_goes_negative():
    """Issue 12's case: the fund at 0, a 10 BTC long (65,000 USDC) 35,000 under water at 50,000
    (requirement 6.5% x 500,000 = 32,500): after an hour the insolvent auction pays |MtM - requirement|
    = 67,500 for all of it. Socializing can raise only the 65,000 the others hold once the keeper has
    covered the -35,000 (maker 65,000, keeper 35,000 - 35,000), so the fund once paid 67,500 and ended
    at -2,500. Now the bid is refused, and half of it (33,750) is paid exactly from what was collected."""
    e = book(DERIVE, {"trader": 65_000, "maker": 65_000, "keeper": 35_000})
    ok(e, trade("trader", "maker", 10, 60000))
    ok(e, market(50000))
    ok(e, start("trader"))
    ok(e, at(3600))
    r = rejected(e, bid("L1", "keeper", 1), "insurance_insufficient")
    assert (r.needed, r.available) == (67_500 * U, 65_000 * U)
    assert insurance(e) == 0
    # half: the keeper covers 17,500 and is paid 33,750, socialized over maker 65,000 + keeper 17,500
    out = ok(e, bid("L1", "keeper", "0.5"))
    assert transfers(out, "insurance") == [(INSURANCE, user_key("keeper"), 33_750 * U)]
    assert sum(t[2] for t in transfers(out, "socialized_loss")) == 33_750 * U  # exactly what it pays
    assert insurance(e) == 0 and gated(e)  # half is still in the insolvent auction


def test_a_batch_lot_at_a_negative_price_the_fund_cannot_pay_goes_unsold():
    """The fund at 0 and 500 USDC to socialize (the others hold BTC): the winning bid asks 18,000 for
    taking the -15,000 account (reserve -19,500). It once cleared and left the fund at -17,500; now it
    goes unsold. (k2 could margin the lot: 15,500 - 15,000 + 18,000 + 1 BTC x 52,000 x 0.6975 = 54,770
    against IM 10% x 520,000 = 52,000.)"""
    e = book(BATCH, {"trader": 65_000, "maker": 0, "k2": 15_500})
    # the maker's short needs IM 60,000: 2 BTC count 2 x 60,000 x 0.6975 = 83,700
    ok(e, {"type": "deposit", "account": "maker", "asset": "BTC", "amount": "2"})
    ok(e, {"type": "deposit", "account": "k2", "asset": "BTC", "amount": "1"})
    ok(e, trade("trader", "maker", 10, 60000))
    ok(e, market(52000))
    ok(e, start("trader"))
    ok(e, bid("L1", "k2", 1, max_price=-18_000))
    out = ok(e, at(10))
    assert of_type(out, "liquidation_fill") == [] and of_type(out, "auction_ended")[0].reason == "unsold"
    assert insurance(e) == 0 and user(e, "k2") == 15_500 * U and size(e, "trader") == 10
