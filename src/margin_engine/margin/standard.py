"""Per-position margin formulas, pure functions on numpy arrays.

Requirements are positive USD amounts to be met by equity (mark-to-market net value, which
already carries each short option's liability -|Q|*mark). Where a venue states its rule as a
signed margin (Lyra: margin = MtM + terms), the requirement is MtM - margin.
"""

from __future__ import annotations

import numpy as np

from margin_engine.margin.profile import DeribitOptionParams, DeriveOptionParams
from margin_engine.perp.tiers import tiered_requirements


def perp_requirements(qty_abs, index, im_ratio, mm_ratio, size_ratio_per_unit, imf_factor=0.0, tiers=None):
    """Deribit (2022-01-11): ratio = base + size_ratio_per_unit * |size|, times notional.

    With size_ratio_per_unit = 0 this is the flat ratio of dYdX tiers and Derive. `tiers`
    (Hyperliquid) replace the flat ratios by the tiered formula with its deductions; `imf_factor`
    raises each ratio to Drift's size premium, max(r, 0.8 r + imf_factor * sqrt(|size|)).
    """
    notional = qty_abs * index
    add_on = size_ratio_per_unit * qty_abs
    if tiers is not None:
        im, mm = tiered_requirements(tiers, notional)
        return im + notional * add_on, mm + notional * add_on
    im_r, mm_r = im_ratio + add_on, mm_ratio + add_on
    if imf_factor:
        premium = imf_factor * np.sqrt(qty_abs)
        im_r, mm_r = np.maximum(im_r, 0.8 * im_r + premium), np.maximum(mm_r, 0.8 * mm_r + premium)
    return notional * im_r, notional * mm_r


def deribit_short_option(spot, strike, is_call, qty_abs, mark, p: DeribitOptionParams):
    """Deribit standard margin, USD form (Deribit knowledge base "Standard Margin"; bit.com).

    short call: IM = |Q|*(max(0.15*S - max(K-S,0), 0.10*S) + mark), MM = |Q|*(0.075*S + mark)
    short put:  IM = |Q|*max(max(0.15*S - max(S-K,0), 0.10*S) + mark, MM/|Q|),
                MM = |Q|*(max(0.075*S, 0.075*mark) + mark)
    """
    otm = np.where(is_call, np.maximum(strike - spot, 0.0), np.maximum(spot - strike, 0.0))
    im_unit = np.maximum(p.im_spot_ratio * spot - otm, p.im_min_spot_ratio * spot) + mark
    mm_call = p.mm_spot_ratio * spot + mark
    mm_put = np.maximum(p.mm_spot_ratio * spot, p.put_mm_mark_ratio * mark) + mark
    mm_unit = np.where(is_call, mm_call, mm_put)
    im_unit = np.where(is_call, im_unit, np.maximum(im_unit, mm_put))
    return qty_abs * im_unit, qty_abs * mm_unit


def derive_short_option(spot, strike, is_call, qty_abs, mark, p: DeriveOptionParams):
    """Lyra v2 Standard Risk Manager, isolated short option (StandardManager.sol).

    Lyra writes signed margins with Q < 0 and MtM = Q*mark:
      call: mult = max(maxSpotReq - otm, minSpotReq), otm = max(0, K-S)/S
            IM = MtM + mult*S*Q;  MM = MtM + mmCallSpotReq*S*Q
      put:  otm = max(0, S-K)/S;  MM = MtM + min(mmPutSpotReq*S*Q, MMPutMtMReq*MtM)
            IM = min(MtM + mult*S*Q, MM*mmOffsetScale)
    The requirements returned are MtM - margin, so they exclude the liability already in equity.
    """
    otm_ratio = np.where(is_call, np.maximum(strike - spot, 0.0), np.maximum(spot - strike, 0.0)) / spot
    mult = np.maximum(p.max_spot_req - otm_ratio, p.min_spot_req)
    im_spot = mult * spot * qty_abs
    liability = qty_abs * mark  # -MtM
    mm_put = np.maximum(p.mm_put_spot_req * spot * qty_abs, p.mm_put_mtm_req * liability)
    mm = np.where(is_call, p.mm_call_spot_req * spot * qty_abs, mm_put)
    # IM = min(MtM - im_spot, offset*(MtM - mm))  ->  requirement = max(im_spot, offset*mm + (offset-1)*liability)
    im_put = np.maximum(im_spot, p.mm_offset_scale * mm_put + (p.mm_offset_scale - 1.0) * liability)
    im = np.where(is_call, im_spot, im_put)
    return im, mm


def derive_max_loss(strikes, is_call, sizes, forward, unpaired_scale):
    """Worst settlement payoff of one expiry's options, never above zero (Derive's max-loss rule
    for spreads, StandardManager._calcMaxLoss: min(payoff, 0) at each point).

    Evaluated at settlement 0 and at every held strike, where a piecewise-linear payoff has its
    kinks; net short calls are unbounded above, so each adds unpaired_scale * F, as Derive does.
    Returns a signed amount (<= 0 means a loss): a long box, worth its width at any settlement,
    has max loss 0, not a negative requirement.
    """
    points = np.concatenate(([0.0], strikes))
    intrinsic = np.where(is_call[:, None], points[None, :] - strikes[:, None], strikes[:, None] - points[None, :])
    payoff = sizes @ np.maximum(intrinsic, 0.0)
    net_calls = float(np.sum(np.where(is_call, sizes, 0.0)))
    return min(float(payoff.min()), 0.0) + min(net_calls, 0.0) * unpaired_scale * forward
