"""Derive conformance: its rules restated from its contracts, expected numbers derived by hand.

Sources (derivexyz/v2-core): `StandardManager.sol` @ 703242148ae4 (the standard manager, SRM),
`PMRMLib.sol` @ b02a82dcd76e (the portfolio manager, PMRM), parameters from
`scripts/config-mainnet.sol` @ f46973056213 and `test/config-test.sol` @ 2e5cca7391fd.

Derive writes margins signed, cash included: margin = cash + sum of (negative) terms, and an
account may add risk while the IM margin is >= 0 and is liquidatable when the MM margin is < 0.
The engine writes equity (cash + mark-to-market) and positive requirements, so
Derive's IM margin = equity - IM = free collateral, and Derive's MM margin = equity - MM.
Options are priced with Black-76 on the forward feed with discount 1 (both managers), here by an
independent `math.erf` implementation.
"""

from __future__ import annotations

import math

import pytest

from margin_engine.files.portfolio import parse_portfolio
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile

U = 1_000_000  # USDC units
NOW = "2026-11-25T08:00:00Z"
T_DEC = 30 / 365  # 25DEC26 08:00 UTC is 30 days after NOW
T_JAN = 40 / 365  # 4JAN27
T_MAY = 180 / 365  # 24MAY27


def black76(forward, strike, years, vol, call):
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(forward / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    d2 = d1 - vol * math.sqrt(years)
    c = forward * n(d1) - strike * n(d2)
    return c if call else c - (forward - strike)  # put-call parity, undiscounted


def margins(accounts, profile, market=None):
    prof = load_profile(profile)
    doc = {"valuation_time": NOW, "market": market or {"BTC": {"index": 60000, "vol": 0.6}}, "accounts": accounts}
    p = parse_portfolio(doc, prof)
    return {m.id: m for m in compute_margins(p.accounts, p.markets, prof, p.valuation_s, explain=True)}


def account(name, positions, usdc="100000", mode="cross", **collateral):
    return {
        "id": name,
        "mode": mode,
        "collateral": {"USDC": usdc, **collateral},
        "positions": [{"instrument": i, "size": s} for i, s in positions],
    }


def derive_margins(m):
    """(IM margin, MM margin) in USDC, Derive's signed form."""
    return (m.equity - m.initial_margin) / U, (m.equity - m.maintenance_margin) / U


# ------------------------------------------------------------------------------ standard manager


def test_srm_call_spread_needs_exactly_its_width():
    # short 60k call, long 65k call: _calcMaxLoss at 0, 60k, 65k = 0, 0, -5000; netCalls 0;
    # margin = cash + max(isolated, -5000) = 100,000 - 5,000 (the isolated short needs ~13% of spot)
    m = margins([account("a", [("BTC-25DEC26-60000-C", "-1"), ("BTC-25DEC26-65000-C", "1")])], "derive")["a"]
    im, mm = derive_margins(m)
    assert im == pytest.approx(95_000, abs=1e-6) and mm == pytest.approx(95_000, abs=1e-6)


def test_srm_long_box_max_loss_is_capped_at_zero():
    # long 60k call, short 65k call, long 65k put, short 60k put: the payoff is +5,000 at every
    # settlement, so each point's min(payoff, 0) is 0 and the max-loss margin is 0, not +5,000.
    # Margin = cash + max(isolated (< 0), 0) = cash: the box neither needs nor lends margin
    box = [
        ("BTC-25DEC26-60000-C", "1"),
        ("BTC-25DEC26-65000-C", "-1"),
        ("BTC-25DEC26-65000-P", "1"),
        ("BTC-25DEC26-60000-P", "-1"),
    ]
    m = margins([account("box", box)], "derive")["box"]
    im, mm = derive_margins(m)
    assert im == pytest.approx(100_000, abs=1e-6) and mm == pytest.approx(100_000, abs=1e-6)
    # the long box's mark-to-market (5,000 undiscounted) is in equity but frees nothing
    assert m.equity / U == pytest.approx(105_000, abs=1e-6)


def test_srm_calendar_does_not_offset_across_expiries():
    # short Dec 60k call, long Mar 60k call: each expiry stands alone, a long counts zero.
    # Dec short call, ATM: otm 0, IM multiplier max(0.15 - 0, 0.13) = 0.15 -> IM margin = MtM - 0.15 S
    # MM margin = MtM - 0.09 S (mmCallSpotReq); MtM = -C(F=60000, K=60000, 30/365, 0.6)
    c_dec = black76(60000, 60000, T_DEC, 0.6, True)
    m = margins([account("cal", [("BTC-25DEC26-60000-C", "-1"), ("BTC-26MAR27-60000-C", "1")])], "derive")["cal"]
    im, mm = derive_margins(m)
    assert im == pytest.approx(100_000 - c_dec - 0.15 * 60000, abs=1e-5)
    assert mm == pytest.approx(100_000 - c_dec - 0.09 * 60000, abs=1e-5)


def test_srm_prices_on_the_given_forward_undiscounted():
    # a forward of 61,000 for 25DEC26 and a 5% rate: Derive prices on the forward with discount 1,
    # so the mark is C(61000, 60000) and the rate plays no part
    market = {"BTC": {"index": 60000, "vol": 0.6, "rate": 0.05, "forward": {"25DEC26": 61000}}}
    m = margins([account("a", [("BTC-25DEC26-60000-C", "-1")])], "derive", market)["a"]
    assert m.positions[0].mark_price == pytest.approx(black76(61000, 60000, T_DEC, 0.6, True), rel=1e-9)


def test_srm_collateral_only_account_pays_the_confidence_charge():
    # 1 BTC and nothing else, spot confidence 0.5 < baseThreshold 0.55 (mainnet):
    # baseMargin = S * 1 * marginFactor 0.75 * IMScale 0.93 - (1 - 0.5) * OCFactor 1 * S * 1
    #            = 41,850 - 30,000 = 11,850 (IM); MM: 60,000 * 0.75 = 45,000, no charge
    market = {"BTC": {"index": 60000, "vol": 0.6, "confidence": 0.5}}
    m = margins([account("hodl", [], usdc="0", BTC="1")], "derive", market)["hodl"]
    im, mm = derive_margins(m)
    assert (im, mm) == (pytest.approx(11_850, abs=1e-6), pytest.approx(45_000, abs=1e-6))
    assert [(a.kind, a.scope) for a in m.adjustments] == [("oracle_confidence", "BTC")]


def test_srm_confidence_charges_perps_and_short_options_not_long_ones():
    # spot 0.9, perp 0.4, vol of 25DEC26 0.5: threshold 0.55, OCFactor 1 (mainnet)
    # perp: min(perp 0.4, spot 0.9) -> (1 - 0.4) * 60,000 * 2 = 72,000
    # short call: min(spot 0.9, forward 1, vol 0.5) -> (1 - 0.5) * 60,000 * 3 = 90,000
    # long put of the same expiry: none (totalShortPositions counts shorts only)
    market = {"BTC": {"index": 60000, "vol": 0.6, "confidence": {"spot": 0.9, "perp": 0.4, "vol": {"25DEC26": 0.5}}}}
    low = margins(
        [account("a", [("BTC-PERP", "2"), ("BTC-25DEC26-70000-C", "-3"), ("BTC-25DEC26-50000-P", "5")], usdc="500000")],
        "derive",
        market,
    )["a"]
    high = margins(
        [account("a", [("BTC-PERP", "2"), ("BTC-25DEC26-70000-C", "-3"), ("BTC-25DEC26-50000-P", "5")], usdc="500000")],
        "derive",
    )["a"]
    assert (low.initial_margin - high.initial_margin) / U == pytest.approx(72_000 + 90_000, abs=1e-5)
    assert low.maintenance_margin == high.maintenance_margin


def test_srm_depeg_charges_perps_and_short_options():
    # USDC at 0.97 < threshold 0.99: multiplier (0.99 - 0.97) * depegFactor 2 = 0.04;
    # depegPenaltyPos = |perp 1| + short options 2 = 3 -> IM += 0.04 * 60,000 * 3 = 7,200
    market = {"BTC": {"index": 60000, "vol": 0.6}}
    positions = [("BTC-PERP", "1"), ("BTC-25DEC26-70000-C", "-2"), ("BTC-25DEC26-50000-P", "4")]
    par = margins([account("a", positions)], "derive", market)["a"]
    depegged = margins([account("a", positions)], "derive", {**market, "USDC": {"index": 0.97}})["a"]
    assert (depegged.initial_margin - par.initial_margin) / U == pytest.approx(7_200, abs=1e-5)
    assert depegged.maintenance_margin == par.maintenance_margin
    assert ("stable_depeg", "BTC") in [(a.kind, a.scope) for a in depegged.adjustments]


def test_srm_base_collateral_valued_at_its_own_price():
    # 1 BTC with USDC at 0.98: mark-to-market in USDC = 60,000 / 0.98 = 61,224.49 (Derive's
    # _getBaseMarginAndMtM: notional / stablePrice); MM margin = 60,000 * 0.75 (on the USD notional)
    m = margins(
        [account("h", [], usdc="0", BTC="1")], "derive", {"BTC": {"index": 60000, "vol": 0.6}, "USDC": {"index": 0.98}}
    )["h"]
    assert m.equity / U == pytest.approx(60000 / 0.98, abs=1e-6)
    assert derive_margins(m)[1] == pytest.approx(45_000, abs=2e-6)  # equity rounds down, MM up: a unit each


def test_srm_perp_margin_on_the_perp_price():
    # perp mark 60,300 (index 60,000): notional 2 * 60,300; IM 10% = 12,060, MM 6.5% = 7,839;
    # a long opened at the mark has no P&L
    market = {"BTC": {"index": 60000, "vol": 0.6, "perp": 60300}}
    m = margins([account("p", [("BTC-PERP", "2")])], "derive", market)["p"]
    assert (m.initial_margin / U, m.maintenance_margin / U) == (pytest.approx(12_060), pytest.approx(7_839))
    assert m.equity / U == pytest.approx(100_000, abs=1e-6)


# ----------------------------------------------------------------------------- portfolio manager

JELLY = [
    # long 4JAN27 synthetic (long call, short put at 60k), short 24MAY27 synthetic at 60k
    ("BTC-4JAN27-60000-C", "1"),
    ("BTC-4JAN27-60000-P", "-1"),
    ("BTC-24MAY27-60000-C", "-1"),
    ("BTC-24MAY27-60000-P", "1"),
]
JELLY_MARKET = {"BTC": {"index": 60000, "vol": 0.6, "forward": {"4JAN27": 60000, "24MAY27": 61000}}}


def test_pmrm_jelly_roll_basis_per_expiry_not_netted():
    # A synthetic is worth F - K whatever the vol (undiscounted put-call parity), so each expiry's
    # basis scenario moves it by +/- 5% of its forward: 4JAN27 long loses 0.05 * 60,000 = 3,000 on
    # the way down, 24MAY27 short loses 0.05 * 61,000 = 3,050 on the way up. Per expiry
    # min(up, down, 0) x (basisContAddFactor 1 + basisContMultFactor 1.2 x T), summed:
    basis = 3000 * (1 + 1.2 * T_JAN) + 3050 * (1 + 1.2 * T_MAY)  # = 3,394.52 + 4,854.93 = 8,249.45
    # (netting first, as the engine did before, gives |3,000 - 3,050| = 50.)
    # The spot scenarios move both forwards together: the worst is at 0.8, about -980 (see below),
    # so the basis loss is the worst case. Static: a call and a put at one strike, one long and one
    # short, leave no naked short (_getOptionContingency). MM = 8,249.45; IM = 1.25 x MM.
    m = margins([account("jelly", JELLY, mode="portfolio")], "derive-pmrm", JELLY_MARKET)["jelly"]
    u = m.portfolio["underlyings"][0]
    assert u["basis_loss"] == pytest.approx(basis, rel=1e-9)
    assert u["loss"] == pytest.approx(basis, rel=1e-9)
    assert sum(u["contingencies"].values()) == pytest.approx(0.0, abs=1e-9)
    # the account's value: (60,000 - 60,000) - (61,000 - 60,000) = -1,000
    assert m.equity / U == pytest.approx(100_000 - 1_000, abs=1e-5)
    assert m.maintenance_margin / U == pytest.approx(basis, abs=1e-5)
    assert m.initial_margin / U == pytest.approx(1.25 * basis, abs=1e-5)
    # scenario 0.8: 4JAN27 worth 60,000 x 0.8 - 60,000 = -12,000 (negative: not discounted);
    # 24MAY27 worth 60,000 - 61,000 x 0.8 = 11,200 > 0, discounted by 0.95 e^(-T (1 x 0 + 0.12)):
    d_may = 0.95 * math.exp(-T_MAY * 0.12)
    at_08 = -12_000 + (11_200 * d_may - (-1_000))
    scenario = next(s for s in u["scenarios"] if s["spot_shock"] == pytest.approx(-0.2))
    assert scenario["pnl"] == pytest.approx(at_08, rel=1e-9)


def test_pmrm_mainnet_scenarios_shock_vol_up_only_at_the_extremes():
    # config-mainnet.sol getDefaultScenarios(): 1.20 and 0.80 with vol Up only, 1.15 ... 0.85 with
    # Up, None and Down: 23 in all
    p = load_profile("derive-pmrm").portfolio_params.underlyings["BTC"].scenarios
    assert len(p) == 23
    assert [v for m, v in p if m in (0.8, 1.2)] == ["up", "up"]
    assert sorted(v for m, v in p if m == 1.0) == ["down", "none", "up"]


def test_pmrm_perp_at_its_mark_and_static_on_spot():
    # 1 perp, mark 60,300, index 60,000: scenario P&L = 60,300 x (m - 1), worst at 0.8: -12,060;
    # static perpPercent 0.03 x spot 60,000 = 1,800; MM = 13,860; IM = 1.25 x 13,860 = 17,325
    market = {"BTC": {"index": 60000, "vol": 0.6, "perp": 60300}}
    m = margins([account("p", [("BTC-PERP", "1")], mode="portfolio")], "derive-pmrm", market)["p"]
    assert m.maintenance_margin / U == pytest.approx(13_860, abs=1e-5)
    assert m.initial_margin / U == pytest.approx(17_325, abs=1e-5)


def test_pmrm_peg_loss_raises_the_im_factor():
    # USDC at 0.97 < pegLossThreshold 0.99: mFactor = 1.25 + (0.99 - 0.97) x pegLossFactor 4 = 1.33
    market = {"BTC": {"index": 60000, "vol": 0.6, "perp": 60300}, "USDC": {"index": 0.97}}
    m = margins([account("p", [("BTC-PERP", "1")], mode="portfolio")], "derive-pmrm", market)["p"]
    assert m.maintenance_margin / U == pytest.approx(13_860, abs=1e-5)
    assert m.initial_margin / U == pytest.approx(1.33 * 13_860, abs=1e-5)


def test_pmrm_confidence_per_feed():
    # spot 0.9, forward of 25DEC26 0.5: threshold 0.55, confMargin 1 (mainnet).
    # perp: portfolio confidence min(spot 0.9, stable 1, perp 1) = 0.9 >= 0.55: nothing;
    # options: netOptions of 25DEC26 = |-2| + |1| = 3 at min(0.9, forward 0.5) -> (1 - 0.5) x 60,000 x 3
    base = {"index": 60000, "vol": 0.6}
    low = {"BTC": {**base, "confidence": {"spot": 0.9, "forward": {"25DEC26": 0.5}}}}
    positions = [("BTC-PERP", "1"), ("BTC-25DEC26-70000-C", "-2"), ("BTC-25DEC26-50000-P", "1")]
    a = margins([account("a", positions, mode="portfolio")], "derive-pmrm", low)["a"]
    b = margins([account("a", positions, mode="portfolio")], "derive-pmrm", {"BTC": base})["a"]
    assert (a.initial_margin - b.initial_margin) / U == pytest.approx(0.5 * 60_000 * 3, abs=1e-5)
    assert a.maintenance_margin == b.maintenance_margin


def test_pmrm_fixed_part_of_the_forward_is_not_shocked():
    # a long 25DEC26 synthetic at 60k on a forward of 61,000 of which 1,000 is fixed: value F - K;
    # scenario m moves only the variable 60,000: worst at 0.8 is -0.2 x 60,000 = -12,000
    # (with nothing fixed it would be -0.2 x 61,000 = -12,200). Basis: -0.05 x 60,000 x (1 + 1.2 T).
    synthetic = [("BTC-25DEC26-60000-C", "1"), ("BTC-25DEC26-60000-P", "-1")]
    fixed = {"BTC": {"index": 60000, "vol": 0.6, "forward": {"25DEC26": {"price": 61000, "fixed": 1000}}}}
    u = margins([account("s", synthetic, mode="portfolio")], "derive-pmrm", fixed)["s"].portfolio["underlyings"][0]
    assert u["worst_pnl"] == pytest.approx(-12_000, rel=1e-9)
    assert u["basis_loss"] == pytest.approx(3_000 * (1 + 1.2 * T_DEC), rel=1e-9)


# ------------------------------------------------------------------------------------- profiles


MAINNET_SRM = {  # scripts/config-mainnet.sol @ f46973056213, getSRMParams("BTC") and getSRMDepegParams()
    "perp": (0.1, 0.065),  # imPerpReq, mmPerpReq
    "options": (0.15, 0.13, 0.09, 0.09, 0.09, 1.05, 1.2, 1.1),
    "btc": (0.75 * 0.93, 0.75),  # marginFactor x IMScale, marginFactor
    "eth": (0.8 * 0.9375, 0.8),
    "oracle": (0.55, 1.0),  # perp/option/baseThreshold, OCFactor
    "depeg": (0.99, 2.0),
    "auction": (0.95, 0.7, 15 * 60, 12 * 3600, 60 * 60, 0.1, 0.15),
}
TEST_SRM = {  # test/config-test.sol @ 2e5cca7391fd, getSRMParams(); no depeg parameters
    "perp": (0.1, 0.065),
    "options": (0.15, 0.1, 0.075, 0.075, 0.075, 1.05, 1.2, 1.1),
    "btc": (0.8 * 0.8, 0.8),
    "eth": (0.8 * 0.8, 0.8),
    "oracle": (0.4, 0.4),
    "depeg": None,
    "auction": (1.0, 0.8, 10 * 60, 2 * 3600, 10 * 60, 0.05, 0.3),
}
MAINNET_PMRM = {  # getPMRMParams() (mainnet)
    "margin": (1.25, 0.95, 1.0, 0.12),  # imFactor, baseStaticDiscount, rateMultScale, rateAddScale
    "basis": (0.05, 1.0, 1.2),  # scenarioSpotUp - 1, basisContAddFactor, basisContMultFactor
    "other": (0.99, 4.0, 0.55, 1.0, 0.03, 0.03, 0.02),  # peg threshold, factor, conf, confMargin, base, perp, option
    "vol": (0.6, 0.3, 0.3, 0.13, 1.0),  # volRangeUp, Down, shortTermPower, longTermPower, dteFloor days
}
TEST_PMRM = {  # getPMRMParams() (test)
    "margin": (1.3, 0.95, 4.0, 0.05),
    "basis": (0.05, 0.25, 0.01),
    "other": (0.98, 2.0, 0.6, 0.5, 0.02, 0.02, 0.01),
    "vol": (0.45, 0.3, 0.3, 0.13, 1.0),
}


def srm_values(p):
    o, d = p.options.derive, p.liquidation.dutch
    return {
        "perp": (p.underlyings["BTC"].perp.im_ratio, p.underlyings["BTC"].perp.mm_ratio),
        "options": (
            o.max_spot_req,
            o.min_spot_req,
            o.mm_call_spot_req,
            o.mm_put_spot_req,
            o.mm_put_mtm_req,
            o.mm_offset_scale,
            o.unpaired_im_scale,
            o.unpaired_mm_scale,
        ),
        "btc": (p.assets["BTC"].im_weight, p.assets["BTC"].mm_weight),
        "eth": (p.assets["ETH"].im_weight, p.assets["ETH"].mm_weight),
        "oracle": (p.oracle.confidence_im_threshold, p.oracle.confidence_im_factor),
        "depeg": None if p.depeg is None else (p.depeg.threshold_usd, p.depeg.im_factor),
        "auction": (
            d.start_discount,
            d.fast_end_discount,
            d.fast_duration_s,
            d.slow_duration_s,
            d.insolvent_duration_s,
            d.insurance_share,
            d.buffer_margin_ratio,
        ),
    }


def pmrm_values(p):
    pm, u = p.portfolio_params, p.portfolio_params.underlyings["BTC"]
    return {
        "margin": (
            pm.im_factor,
            pm.option_value_discount_static,
            pm.option_value_discount_rate_mult,
            pm.option_value_discount_rate_add,
        ),
        "basis": (pm.basis_shock_ratio, pm.basis_factor, pm.basis_factor_per_year),
        "other": (
            pm.peg_loss_threshold_usd,
            pm.peg_loss_factor,
            pm.confidence_threshold,
            pm.confidence_factor,
            pm.base_static_spot_ratio,
            pm.perp_static_spot_ratio,
            pm.short_option_min_spot_ratio,
        ),
        "vol": (u.vol_range_up, u.vol_range_down, pm.vol_power_short, pm.vol_power_long, pm.min_dte_days),
    }


def approx_tree(d):
    return {k: None if v is None else pytest.approx(v, rel=1e-12) for k, v in d.items()}


@pytest.mark.parametrize(
    ("name", "srm", "pmrm", "scenarios"),
    [
        ("derive", MAINNET_SRM, None, None),
        ("derive-test", TEST_SRM, None, None),
        ("derive-pmrm", MAINNET_SRM, MAINNET_PMRM, 23),
        ("derive-pmrm-test", TEST_SRM, TEST_PMRM, 21),
    ],
)
def test_packaged_derive_profiles_equal_the_published_configs(name, srm, pmrm, scenarios):
    p = load_profile(name)
    assert srm_values(p) == approx_tree(srm)
    assert not p.options.discount_by_rate
    assert p.about is not None and p.about.venue == "Derive"
    assert ("test" in p.about.version) == name.endswith("-test")
    if pmrm is None:
        assert p.portfolio is None
        return
    assert pmrm_values(p) == approx_tree(pmrm)
    assert p.portfolio_params.mm_factor == 1.0  # PMRMLib applies no factor to maintenance
    assert len(p.portfolio_params.underlyings["BTC"].scenarios) == scenarios


def test_every_packaged_profile_says_whose_rules_and_where_from():
    from margin_engine.margin.profile import packaged_profiles

    for name in packaged_profiles():
        about = load_profile(name).about
        assert about is not None and about.venue and about.version and about.source, name


def test_example_file_with_forwards_a_perp_mark_and_a_stablecoin_price():
    """examples/derive-market.json under derive-pmrm, the numbers docs/formats.md works through."""
    from pathlib import Path

    from margin_engine.files.portfolio import load_portfolio

    prof = load_profile("derive-pmrm")
    pf = load_portfolio(Path(__file__).resolve().parents[2] / "examples" / "derive-market.json", prof)
    m = {x.id: x for x in compute_margins(pf.accounts, pf.markets, prof, pf.valuation_s)}
    basis = 3000 * (1 + 1.2 * T_JAN) + 3050 * (1 + 1.2 * T_MAY)
    # jelly roll (portfolio): MM = the basis loss; USDC at 0.98 raises the IM factor to
    # 1.25 + (0.99 - 0.98) x 4 = 1.29
    assert m["jelly-roll"].maintenance_margin / U == pytest.approx(basis, abs=1e-5)
    assert m["jelly-roll"].initial_margin / U == pytest.approx(1.29 * basis, abs=1e-5)
    # 2 perps at the mark 60,300 (standard manager): IM 10% x 120,600 = 12,060 plus the depeg charge
    # (0.99 - 0.98) x 2 x 60,000 x 2 = 2,400; MM 6.5% x 120,600 = 7,839
    assert m["perp-at-mark"].initial_margin / U == pytest.approx(14_460, abs=1e-5)
    assert m["perp-at-mark"].maintenance_margin / U == pytest.approx(7_839, abs=1e-5)
    # 1 BTC: worth 60,000 / 0.98 = 61,224.49 USDC; margin counts 60,000 x 0.75 x 0.93 = 41,850 (IM)
    # and 60,000 x 0.75 = 45,000 (MM), in USD as Derive does
    h = m["btc-holder"]
    assert h.equity / U == pytest.approx(60000 / 0.98, abs=2e-6)
    assert derive_margins(h) == (pytest.approx(41_850, abs=2e-6), pytest.approx(45_000, abs=2e-6))
