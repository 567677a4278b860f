"""Deribit conformance: the worked examples Deribit publishes, computed by the `deribit` profile.

Source: Deribit support, "Linear Perpetual" (support.deribit.com/hc/en-us/articles/
25944738177565-Linear-Perpetual), "Margin calculation examples" for BTC_USDC at an index of
100,000: IM = 2% + size x 0.005%, MM = 1% + size x 0.005% of the position, on the index price.
"""

import pytest

from margin_engine.files.portfolio import parse_portfolio
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile

U = 1_000_000


@pytest.mark.parametrize(
    ("size", "im_usdc", "mm_usdc"),
    [
        # 25 BTC: 2% + 25 x 0.005% = 2.125% of 2,500,000 = 53,125; 1.125% -> 28,125 (Deribit's table)
        (25, 53_125, 28_125),
        # 350 BTC: 2% + 350 x 0.005% = 3.75% of 35,000,000 = 1,312,500 (Deribit's table);
        # MM 1% + 1.75% = 2.75% -> 962,500
        (350, 1_312_500, 962_500),
    ],
)
@pytest.mark.parametrize("side", [1, -1])
def test_linear_perpetual_margin_examples(size, im_usdc, mm_usdc, side):
    profile = load_profile("deribit")
    doc = {
        "valuation_time": "2026-11-25T08:00:00Z",
        "market": {"BTC": {"index": 100000, "vol": 0.6}},
        "accounts": [
            {
                "id": "a",
                "collateral": {"USDC": "10000000"},
                "positions": [{"instrument": "BTC-PERP", "size": str(side * size)}],
            }
        ],
    }
    p = parse_portfolio(doc, profile)
    (m,) = compute_margins(p.accounts, p.markets, profile, p.valuation_s)
    assert (m.initial_margin, m.maintenance_margin) == (im_usdc * U, mm_usdc * U)
