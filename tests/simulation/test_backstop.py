"""The protocol's backstop liquidator and every loss counted: on test_runner's cascade (40 longs at
about 10x, a 6% gap that stays), thinner books never show less total loss."""

import pytest
from test_runner import CASCADE

from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import parse_scenario


def run(depth_usd_per_pct: float, **backstop):
    sc = parse_scenario(
        {
            **CASCADE,
            "steps": 6,
            "backstop": {"enabled": True, **backstop},
            "depth": {**CASCADE["depth"], "depth_usd_per_pct": depth_usd_per_pct},
        }
    )
    return run_path(sc, sc.all_variants()[0], 0).metrics


@pytest.fixture(scope="module")
def by_depth():
    return {depth: run(depth) for depth in (3e6, 3e5, 3e4, 3e3)}


def test_thinner_books_never_show_less_total_loss(by_depth):
    losses = [by_depth[d]["bad_debt_usd"] for d in sorted(by_depth, reverse=True)]
    assert losses == sorted(losses)
    assert losses[-1] > 100 * losses[0]  # not a flat line: the thin book costs two orders of magnitude more


def test_the_backstop_takes_what_keepers_leave_and_its_loss_is_bad_debt(by_depth):
    deep, thin = by_depth[3e6], by_depth[3e4]
    assert deep["backstop_takeovers"] == 0  # keepers took every account
    # in the thin book keepers stand aside (the unwind costs more than the penalty pays) ...
    assert thin["keeper_fills"] < thin["backstop_takeovers"]
    assert thin["backstop_takeovers"] > 0 and thin["accounts_underwater_at_end"] == 0
    # ... and the backstop's loss (the price it took at against what it sold at and still holds at
    # the final mark) is the protocol's
    assert thin["backstop_pnl_usd"] < 0
    assert thin["backstop_loss_usd"] == -thin["backstop_pnl_usd"]
    total = thin["bad_debt_resolved_usd"] + thin["bad_debt_open_usd"] + thin["backstop_loss_usd"]
    assert thin["bad_debt_usd"] == pytest.approx(total, rel=1e-12)
    assert thin["backstop_position_end_usd"] > 0  # it is still unwinding, within its slippage limit


def test_the_backstop_waits_for_its_delay_and_keeps_its_limit():
    late = run(3e4, delay_s=86_400)  # longer than the run
    assert late["backstop_takeovers"] == 0 and late["accounts_underwater_at_end"] > 0
    assert late["bad_debt_open_usd"] > 0  # what nobody took is still counted
    capped = run(3e4, position_max_usd=150_000)  # about one account's notional
    assert capped["backstop_declined"] > 0
    assert capped["backstop_takeovers"] < run(3e4)["backstop_takeovers"]


def test_the_fund_as_a_share_of_open_interest_and_adl_once_it_runs_dry():
    def with_fund(ratio):
        sc = parse_scenario(
            {
                **CASCADE,
                "steps": 6,
                "insurance_fund_oi_ratio": ratio,
                "backstop": {"enabled": True},
                "depth": {**CASCADE["depth"], "depth_usd_per_pct": 3e4},
            }
        )
        return run_path(sc, sc.all_variants()[0], 0).metrics

    small, large = with_fund(0.0025), with_fund(0.1)
    oi = small["open_interest_start_usd"]
    assert oi == large["open_interest_start_usd"] > 0
    assert small["insurance_fund_start_usd"] == round(0.0025 * oi, 2)
    assert large["insurance_fund_start_usd"] == round(0.1 * oi, 2)
    # 0.25% of open interest runs dry and ADL closes the rest; 10% survives without ADL
    assert small["fund_min_usd"] == 0 and small["adl_usd"] > 0
    assert large["fund_min_usd"] > 0 and large["adl_usd"] == 0 and large["socialized_loss_usd"] == 0


CRASH_BOOK = {"vol_elasticity": 1.0, "drawdown_elasticity": 9.9, "refill_half_life_s": 300}


@pytest.mark.parametrize("guards", [False, True])
def test_forced_sales_in_the_crash_book_liquidate_the_next_accounts(guards):
    """One liquidation's sale lowers the mid enough to liquidate more accounts; the honest finding:
    the default guards do not stop it (the sales move every source's mid by less than the 5% jump
    limit, and the median passes it on), so the cascade is the same with the guards on and off."""

    def run(permanent_fraction):
        depth = {**CASCADE["depth"], **CRASH_BOOK, "depth_usd_per_pct": 3e5, "permanent_fraction": permanent_fraction}
        keepers = {**CASCADE["keepers"], "rounds_max": 5}
        sc = parse_scenario(
            {**CASCADE, "dt_s": 60, "steps": 10, "keepers": keepers, "oracle": {"guards": guards}, "depth": depth}
        )
        return run_path(sc, sc.all_variants()[0], 0).metrics

    no_impact, impact = run(0.0), run(0.5)
    assert no_impact["cascade_liquidations"] == 0 and no_impact["min_mid_usd"] == pytest.approx(56_400)
    assert impact["cascade_liquidations"] == 3
    assert impact["liquidation_count"] == no_impact["liquidation_count"] + 3
    assert impact["min_mark_usd"] < 56_000 and impact["bad_debt_usd"] > 2 * no_impact["bad_debt_usd"]
