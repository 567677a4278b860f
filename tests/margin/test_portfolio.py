"""Portfolio margin: hand-worked cases, properties, and the vectorized path against its plain twin."""

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from margin_engine.files.portfolio import parse_portfolio
from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.portfolio import book_from_views, portfolio_margin
from margin_engine.margin.portfolio_reference import reference_margin
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW = "2026-11-25T08:00:00Z"
NOW_S = 1795593600
DERIBIT_PM = load_profile("deribit-pm")
DERIVE_PM = load_profile("derive-pmrm")
MARKETS = {
    "BTC": parse_market("BTC", {"index": 60000, "vol": 0.6}, "m"),
    "ETH": parse_market("ETH", {"index": 3000, "vol": {"25DEC26": 0.7, "26MAR27": 0.65}}, "m"),
}

# the whole market model: forwards per expiry (one with a fixed part), perp marks apart from the
# index, rates per expiry, confidences per feed below the thresholds, USDC below its peg
RICH_MARKETS = {
    "BTC": parse_market(
        "BTC",
        {
            "index": 60000,
            "vol": 0.6,
            "rate": {"25DEC26": 0.04, "26MAR27": 0.05},
            "forward": {"25DEC26": 60400, "26MAR27": {"price": 61500, "fixed": 700}},
            "perp": 60150,
            "confidence": {"spot": 0.9, "perp": 0.5, "vol": {"26MAR27": 0.4}},
        },
        "m",
    ),
    "ETH": parse_market(
        "ETH",
        {
            "index": 3000,
            "vol": {"25DEC26": 0.7, "26MAR27": 0.65},
            "rate": 0.03,
            "perp": 2990,
            "confidence": {"spot": 0.5, "forward": {"25DEC26": 0.3}},
        },
        "m",
    ),
    "USDC": parse_market("USDC", {"index": 0.97, "confidence": 0.8}, "m", price_only=True),
}


def pm(positions, collateral=None, profile=DERIBIT_PM):
    doc = {
        "valuation_time": NOW,
        "market": {"BTC": {"index": 60000, "vol": 0.6}},
        "accounts": [
            {"id": "a", "mode": "portfolio", "collateral": collateral or {"USDC": "100000"}, "positions": positions}
        ],
    }
    p = parse_portfolio(doc, profile)
    book = book_from_views(p.accounts, profile)
    return portfolio_margin(book, p.markets, profile, p.valuation_s), p


def bs_call(s, k, t, vol):
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    return s * n(d1) - k * n(d1 - vol * math.sqrt(t))


T30 = 30 / 365  # 25DEC26 08:00 from the valuation time


def test_bull_and_bear_call_spreads_need_at_most_their_width():
    for sizes in (("1", "-1"), ("-1", "1")):
        result, _ = pm(
            [
                {"instrument": "BTC-25DEC26-60000-C", "size": sizes[0]},
                {"instrument": "BTC-25DEC26-65000-C", "size": sizes[1]},
            ]
        )
        assert result.initial_margin[0] <= 5000.0  # width 65,000 - 60,000
        assert result.maintenance_margin[0] == pytest.approx(0.8 * result.initial_margin[0])


def test_long_option_alone_needs_nothing_beyond_its_premium():
    for name in ("BTC-25DEC26-60000-C", "BTC-25DEC26-90000-C", "BTC-25DEC26-40000-P"):
        result, _ = pm([{"instrument": name, "size": "3"}])
        premium = result.equity[0] - 100000.0
        assert 0 < result.initial_margin[0] <= premium


def test_synthetic_short_hedged_by_perp_needs_only_contingencies():
    # -C + P at one strike = short forward: its P&L cancels the long perp's in every scenario,
    # whatever the vol shock. Left: the delta shock on the perp, 1% * 60,000 * 1 = 600; the
    # net short options at 60,000 are -1 + 1 = 0, so no short-option minimum.
    result, _ = pm(
        [
            {"instrument": "BTC-25DEC26-60000-C", "size": "-1"},
            {"instrument": "BTC-25DEC26-60000-P", "size": "1"},
            {"instrument": "BTC-PERP", "size": "1"},
        ]
    )
    risk = result.by_underlying[0]
    assert risk.loss[0] == pytest.approx(0.0, abs=1e-7)
    assert risk.contingencies["short_option"][0] == 0.0
    assert result.initial_margin[0] == pytest.approx(600.0, abs=1e-7)


def test_short_call_alone_needs_the_full_worst_case_move():
    result, _ = pm([{"instrument": "BTC-25DEC26-60000-C", "size": "-1"}])
    c0 = bs_call(60000, 60000, T30, 0.6)
    # vol up at 30 days: 0.6 * (1 + 0.5 * (30/30)^0.30) = 0.9; scan -16% ... +16% by 4%
    worst = max(
        bs_call(60000 * (1 + k * 0.04), 60000, T30, v) - c0 for k in range(-4, 5) for v in (0.6 * 0.75, 0.6, 0.9)
    )
    # extended moves at vol up, damped to 0.16/|move|
    worst = max(
        [worst]
        + [
            (bs_call(60000 * (1 + m), 60000, T30, 0.9) - c0) * min(1, 0.16 / abs(m))
            for m in (-0.66, -0.33, 0.5, 1, 2, 3, 4, 5)
        ]
    )
    assert result.by_underlying[0].loss[0] == pytest.approx(worst, rel=1e-9)
    # + 0.01 * 60,000 per net short option; no linear delta
    assert result.initial_margin[0] == pytest.approx(worst + 600.0, rel=1e-9)


def test_btc_collateral_moves_with_short_calls():
    # 1 BTC of collateral short 1 call: a covered call. Up moves: collateral gains what the call loses.
    covered, _ = pm([{"instrument": "BTC-25DEC26-60000-C", "size": "-1"}], collateral={"BTC": "1"})
    naked, _ = pm([{"instrument": "BTC-25DEC26-60000-C", "size": "-1"}], collateral={"USDC": "60000"})
    assert covered.base[0] < naked.base[0]
    # the haircut is charged on top: 60,000 * (1 - 0.90) for IM
    assert covered.haircut_im[0] == pytest.approx(6000.0)


def test_derive_pmrm_im_is_125_percent_of_mm():
    result, _ = pm(
        [{"instrument": "BTC-25DEC26-60000-C", "size": "-1"}, {"instrument": "BTC-PERP", "size": "0.5"}],
        profile=DERIVE_PM,
    )
    assert result.initial_margin[0] == pytest.approx(1.25 * result.maintenance_margin[0])
    conts = result.by_underlying[0].contingencies
    assert conts["perp_static"][0] == pytest.approx(0.03 * 60000 * 0.5)  # 3% of spot per perp
    assert conts["short_option"][0] == pytest.approx(0.02 * 60000)  # 2% per net short option
    risk = result.by_underlying[0]
    # the basis loss floors the worst scenario, it does not add to it (Lyra's getMarginAndMarkToMarket)
    assert 0 < risk.basis_loss[0] < risk.loss[0]
    assert risk.loss[0] == pytest.approx(-risk.pnl[0].min())


def test_lyra_naked_shorts_at_one_strike_add_up():
    # Lyra's own test: short call + short put at 1500 -> contingency of 2 short options
    # (2% * spot * 2); a short call against a long put at that strike -> none
    doc = {
        "valuation_time": NOW,
        "market": {"ETH": {"index": 1500, "vol": 0.6}},
        "accounts": [
            {
                "id": "a",
                "mode": "portfolio",
                "collateral": {"USDC": "10000"},
                "positions": [
                    {"instrument": "ETH-25DEC26-1500-C", "size": "-1"},
                    {"instrument": "ETH-25DEC26-1500-P", "size": p},
                ],
            }
            for p in ("-1", "1")
        ],
    }
    doc["accounts"][1]["id"] = "b"
    p = parse_portfolio(doc, DERIVE_PM)
    result = portfolio_margin(book_from_views(p.accounts, DERIVE_PM), p.markets, DERIVE_PM, NOW_S)
    shorts = result.by_underlying[1].contingencies["short_option"]
    assert shorts.tolist() == pytest.approx([2 * 1500 * 0.02, 0.0])


def test_low_oracle_confidence_raises_the_requirement():
    def doc(conf):
        return {
            "valuation_time": NOW,
            "market": {"BTC": {"index": 60000, "vol": 0.6, "confidence": conf}},
            "accounts": [
                {
                    "id": "a",
                    "mode": "portfolio",
                    "collateral": {"USDC": "1"},
                    "positions": [{"instrument": "BTC-PERP", "size": "2"}],
                }
            ],
        }

    low, high = (parse_portfolio(doc(c), DERIVE_PM) for c in ("0.5", "0.9"))
    r_low = portfolio_margin(book_from_views(low.accounts, DERIVE_PM), low.markets, DERIVE_PM, NOW_S)
    r_high = portfolio_margin(book_from_views(high.accounts, DERIVE_PM), high.markets, DERIVE_PM, NOW_S)
    # (1 - 0.5) * factor 1 * 60,000 * 2, on initial margin only (Lyra adds it after the IM factor)
    assert r_low.initial_margin[0] - r_high.initial_margin[0] == pytest.approx(60000.0)
    assert r_low.maintenance_margin[0] == r_high.maintenance_margin[0]


def test_portfolio_mode_in_compute_margins_and_explain():
    p = parse_portfolio(
        {
            "valuation_time": NOW,
            "market": {"BTC": {"index": 60000, "vol": 0.6}},
            "accounts": [
                {
                    "id": "x",
                    "mode": "portfolio",
                    "collateral": {"USDC": "10000"},
                    "positions": [
                        {"instrument": "BTC-25DEC26-60000-C", "size": "-1"},
                        {"instrument": "BTC-PERP", "size": "0.5"},
                    ],
                }
            ],
        },
        DERIBIT_PM,
    )
    (m,) = compute_margins(p.accounts, p.markets, DERIBIT_PM, p.valuation_s, explain=True)
    (u,) = m.portfolio["underlyings"]
    assert sum(c["pnl"] for c in u["contributions"]) == pytest.approx(u["worst_pnl"])
    assert len(u["scenarios"]) == 9 * 3 + 8
    assert m.initial_margin == math.ceil(Decimal(u["base"]).scaleb(6))
    assert m.to_json()["portfolio"]["underlyings"][0]["loss"] == format(
        Decimal(u["loss"]).quantize(Decimal("1e-6")), "f"
    )
    # the same account in a profile without a risk matrix is margined as cross
    (std,) = compute_margins(p.accounts, p.markets, load_profile("deribit"), p.valuation_s)
    assert std.portfolio is None and std.initial_margin > m.initial_margin


# --- properties over random portfolios -------------------------------------------------------

EXPIRIES = ("25DEC26", "26MAR27")
position = st.one_of(
    st.tuples(
        st.sampled_from(["BTC", "ETH"]),
        st.sampled_from(EXPIRIES),
        st.integers(-6, 6),
        st.booleans(),
        st.integers(-50, 50).filter(bool),
    ).map(
        lambda t: (
            f"{t[0]}-{t[1]}-{(60000 if t[0] == 'BTC' else 3000) * (10 + t[2]) // 10}-{'C' if t[3] else 'P'}",
            Decimal(t[4]) / 10,
        )
    ),
    st.tuples(
        st.sampled_from(["BTC-PERP", "ETH-PERP", "BTC-25DEC26", "BTC-26MAR27", "ETH-26MAR27"]),
        st.integers(-50, 50).filter(bool),
    ).map(lambda t: (t[0], Decimal(t[1]) / 10)),  # perps and dated futures
)
account = st.tuples(
    st.lists(position, min_size=1, max_size=8, unique_by=lambda p: p[0]),
    st.integers(0, 10**11),
    st.integers(0, 3 * 10**8),
    st.integers(-(10**10), 10**10),
)


def _view(i, acct):
    positions, usdc, btc, quote = acct
    views = tuple(
        PositionView(parse_instrument(name), size, quote if name[-1] not in "CP" else 0) for name, size in positions
    )
    return AccountView(f"a{i}", "portfolio", {"USDC": usdc, "BTC": btc}, views)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(account, min_size=1, max_size=6),
    st.sampled_from([DERIBIT_PM, DERIVE_PM, load_profile("derive-pmrm-test")]),
    st.sampled_from([MARKETS, RICH_MARKETS]),
)
def test_vectorized_agrees_with_reference(accounts, profile, markets):
    views = [_view(i, a) for i, a in enumerate(accounts)]
    result = portfolio_margin(book_from_views(views, profile), markets, profile, NOW_S)
    for i, view in enumerate(views):
        ref = reference_margin(view, markets, profile, NOW_S)
        scale = max(1.0, abs(ref["equity"]), ref["initial_margin"])
        assert result.equity[i] == pytest.approx(ref["equity"], abs=1e-9 * scale)
        assert result.initial_margin[i] == pytest.approx(ref["initial_margin"], abs=1e-9 * scale)
        assert result.maintenance_margin[i] == pytest.approx(ref["maintenance_margin"], abs=1e-9 * scale)
        assert result.initial_margin[i] >= result.maintenance_margin[i]


@settings(max_examples=40, deadline=None)
@given(st.lists(account, min_size=1, max_size=3), st.floats(0.04, 0.3), st.floats(0.0, 0.3))
def test_requirement_never_falls_when_the_range_widens(accounts, narrow, extra):
    views = [_view(i, a) for i, a in enumerate(accounts)]

    def with_range(r):
        params = DERIBIT_PM.portfolio.underlyings
        new_u = {u: p.model_copy(update={"price_range": r}) for u, p in params.items()}
        return DERIBIT_PM.model_copy(
            update={"portfolio": DERIBIT_PM.portfolio.model_copy(update={"underlyings": new_u})}
        )

    small, wide = with_range(narrow), with_range(narrow + extra)
    a = portfolio_margin(book_from_views(views, small), MARKETS, small, NOW_S)
    b = portfolio_margin(book_from_views(views, wide), MARKETS, wide, NOW_S)
    assert np.all(b.initial_margin >= a.initial_margin - 1e-9 * np.maximum(1, a.initial_margin))


def test_incremental_update_equals_full_recompute():
    from margin_engine.margin.portfolio import IncrementalPortfolioMargin

    views = [
        _view(i, a)
        for i, a in enumerate(
            [
                ([("BTC-25DEC26-60000-C", Decimal(-1)), ("BTC-PERP", Decimal("0.5"))], 10**10, 0, 0),
                ([("ETH-26MAR27-3300-P", Decimal(-4))], 10**10, 10**8, 0),
                ([("ETH-PERP", Decimal(2)), ("BTC-26MAR27-54000-P", Decimal(1))], 10**9, 0, -(10**9)),
            ]
        )
    ]
    book = book_from_views(views, DERIBIT_PM)
    inc = IncrementalPortfolioMargin(book, MARKETS, DERIBIT_PM, NOW_S)
    moved = parse_market("ETH", {"index": 2500, "vol": 0.9}, "m")
    touched = inc.update_market(moved)
    assert touched.tolist() == [1, 2]  # the ETH holders only
    full = portfolio_margin(book, {**MARKETS, "ETH": moved}, DERIBIT_PM, NOW_S)
    # a stablecoin price values every underlying's collateral: all accounts are re-margined
    usdc = parse_market("USDC", {"index": 0.95}, "m", price_only=True)
    assert inc.update_market(usdc).tolist() == [0, 1, 2]
    depegged = portfolio_margin(book, {**MARKETS, "ETH": moved, "USDC": usdc}, DERIBIT_PM, NOW_S)
    np.testing.assert_allclose(inc.result().equity, depegged.equity, rtol=1e-12)
    np.testing.assert_allclose(inc.result().initial_margin, depegged.initial_margin, rtol=1e-12)
    inc.update_market(parse_market("USDC", {"index": 1}, "m", price_only=True))
    got = inc.result()
    np.testing.assert_allclose(got.initial_margin, full.initial_margin, rtol=1e-12)
    np.testing.assert_allclose(got.equity, full.equity, rtol=1e-12)
