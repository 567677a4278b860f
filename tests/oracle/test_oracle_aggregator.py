"""The guarded mark: spikes ignored, stale feeds flagged, real crashes followed, absurd moves halted.

Defaults throughout (OracleParams()): stale after 60 s, 2 sources, deviation 10% from the 5-minute
TWAP, jump limit 5% per 10 s, circuit breaker at a median max/min of 1.5 within 300 s.
"""

import math

import pytest

from margin_engine.errors import InputError
from margin_engine.oracle import (
    OracleParams,
    OracleState,
    OracleStatus,
    PriceUpdate,
    RejectReason,
    TimeWentBack,
    UnderlyingMismatch,
    apply_update,
    mark_at,
)

T0 = 1795593600  # 2026-11-25T08:00:00Z
P = OracleParams()
SOURCES = ("binance", "coinbase", "kraken")


def update(source, price, t, confidence=None, volume=None, underlying="BTC"):
    return PriceUpdate(underlying, source, price, confidence, t, volume)


def push(state, source, price, t, params=P, now_s=None, **kw):
    return apply_update(state, update(source, price, t, **kw), params, t if now_s is None else now_s)


def steady(seconds, price=60000.0, start=T0, params=P, state=None):
    """All three sources at `price` every 10 s (2 s apart) for `seconds`; the state and every outcome."""
    state = state or OracleState("BTC")
    outcomes = []
    for t in range(start, start + seconds, 10):
        for k, source in enumerate(SOURCES):
            state, outcome = push(state, source, price, t + 2 * k, params)
            outcomes.append(outcome)
    return state, outcomes


# (a) one of three sources spikes +30% for one update


def test_a_one_source_spike_is_ignored_by_the_median():
    state, _ = steady(120)
    before = state.mark.price
    state, outcome = push(state, "coinbase", 78000.0, T0 + 122)  # +30%
    assert outcome.accepted
    assert abs(outcome.mark.price / before - 1) < P.jump_ratio_max
    assert outcome.mark.price == 60000.0  # in fact the median ignores it
    assert outcome.mark.status is OracleStatus.ok
    assert "ignored coinbase (+30.0%)" in outcome.mark.reason
    assert outcome.mark.sources_used == ("binance", "kraken")
    state, outcome = push(state, "kraken", 60000.0, T0 + 124)
    assert outcome.mark.price == 60000.0
    state, outcome = push(state, "coinbase", 60000.0, T0 + 132)  # back to normal
    assert outcome.mark.price == 60000.0 and outcome.mark.sources_used == SOURCES


def test_a_with_two_sources_the_twap_decides_and_the_status_is_degraded():
    state = OracleState("BTC")
    for t in range(T0, T0 + 120, 10):
        state, _ = push(state, "binance", 60000.0, t)
        state, _ = push(state, "kraken", 60000.0, t + 1)
    state, outcome = push(state, "kraken", 78000.0, T0 + 121)
    # the median of two would be 69,000; kraken is 30% from the TWAP and one of two: left out
    assert outcome.mark.price == 60000.0
    assert outcome.mark.status is OracleStatus.degraded
    assert "1 used, sources_min 2" in outcome.mark.reason


# (b) stale


def test_b_all_sources_stale():
    state, _ = steady(60)  # last updates at T0+50, +52, +54
    assert mark_at(state, T0 + 110, P).status is OracleStatus.ok  # binance is 60 s old: still fresh
    mark = mark_at(state, T0 + 115, P)  # newest (kraken, T0+54) is 61 s old
    assert mark.status is OracleStatus.stale
    assert mark.price == 60000.0  # held
    assert mark.reason == "no fresh source: the newest (kraken) is 61 s old, max 60 s"
    assert mark.sources_used == ()


def test_b_one_fresh_source_left_is_degraded():
    state, _ = steady(60)
    for t in range(T0 + 60, T0 + 130, 10):
        state, outcome = push(state, "binance", 60010.0, t)
    assert outcome.mark.status is OracleStatus.degraded
    assert outcome.mark.sources_used == ("binance",)
    assert outcome.mark.price == 60010.0


def test_b_an_update_already_too_old_is_accepted_but_not_fresh():
    state, _ = steady(60)
    state, outcome = push(state, "binance", 60000.0, T0 + 100, now_s=T0 + 200)
    assert outcome.accepted
    assert outcome.mark.status is OracleStatus.stale


def test_no_update_yet_is_stale_without_a_price():
    mark = mark_at(OracleState("BTC"), T0, P)
    assert mark.price is None and mark.twap is None and mark.status is OracleStatus.stale
    assert mark.reason == "no accepted update yet"


def test_first_update_sets_the_mark():
    state, outcome = push(OracleState("BTC"), "binance", 60000.0, T0)
    assert outcome.mark.price == outcome.mark.twap == outcome.mark.ema == 60000.0
    assert outcome.mark.status is OracleStatus.degraded  # one source, sources_min 2
    state, outcome = push(state, "kraken", 60010.0, T0)
    assert outcome.mark.price == 60005.0 and outcome.mark.status is OracleStatus.ok


# (c) a steady 40% fall over one hour is followed


def test_c_steady_crash_is_followed():
    state = OracleState("BTC")
    for step in range(361):
        t = T0 + 10 * step
        index = 60000 * (1 - 0.4 * step / 360)
        for k, source in enumerate(SOURCES):
            state, outcome = push(state, source, index * (1 + 0.0003 * (k - 1)), t + 3 * k)
            if step > 0 or k > 0:  # the very first update is one source: degraded
                assert outcome.mark.status is OracleStatus.ok, outcome.mark.reason
            assert abs(outcome.mark.price / index - 1) < 0.01
    assert index == pytest.approx(36000)
    assert abs(state.mark.price / 36000 - 1) < 0.01
    assert state.mark.twap == pytest.approx(37000, rel=0.01)  # lags by half the window: 150 s * 6.67 USD/s


def test_fast_real_crash_is_followed_at_the_jump_limit():
    state, _ = steady(120, price=100.0)  # last update and mark at T0+114
    marks = []
    for t in range(T0 + 124, T0 + 424, 10):  # all three sources at 80 (-20%), each time in the same second
        for source in SOURCES:
            state, outcome = push(state, source, 80.0, t)
        marks.append(outcome.mark)
    first = marks[0]
    # 10 s after the mark at T0+114: at most 5% down. All three sources are 20% from the TWAP,
    # a majority, so the TWAP is what lags and their median is followed
    assert first.price == pytest.approx(95.0)
    assert first.jump_limited and first.status is OracleStatus.degraded
    assert "following their median" in first.reason and "jump limit" in first.reason
    assert [round(m.price, 4) for m in marks[:5]] == [95.0, 90.25, 85.7375, 81.4506, 80.0]  # 5% per 10 s
    assert not marks[4].jump_limited
    # at the sources but degraded while the 5-minute TWAP has not confirmed the move (> 10% away)
    assert marks[4].status is OracleStatus.degraded and "following their median" in marks[4].reason
    caught_up = next(m for m in marks if m.status is OracleStatus.ok)
    assert 80 / caught_up.twap > 0.9 and all(m.status is OracleStatus.ok for m in marks[marks.index(caught_up) :])
    assert caught_up.time_s - T0 - 124 < 300


def test_jump_limit_is_a_rate_frequent_updates_do_not_compound_it():
    state, _ = steady(120, price=100.0)
    t = T0 + 114
    for _ in range(10):  # one source a second, all at 80
        for source in SOURCES:
            t += 1
            state, outcome = push(state, source, 80.0, t)
    # from the mark at T0+115 (binance alone, ignored) to T0+144: 0.5% per second compounded,
    # not 5% per update (which would be 100 * 0.95 ** 29 = 22.6)
    assert outcome.mark.price == pytest.approx(100 * 0.995**29)


def test_same_second_updates_revise_the_mark_from_the_same_base():
    state, _ = steady(120, price=100.0)  # last mark at T0+114
    t = T0 + 124
    state, a = push(state, "binance", 80.0, t)
    state, b = push(state, "kraken", 80.0, t)
    state, c = push(state, "coinbase", 80.0, t)
    assert a.mark.price == 100.0  # median still 100
    assert b.mark.price == pytest.approx(95.0)  # 5% from the mark at T0+114
    assert c.mark.price == pytest.approx(95.0)  # not 95 * 0.95: same second, same base


# (e) rejections


def test_e_replayed_and_future_updates_are_rejected_and_change_nothing():
    state, _ = steady(20)  # binance last at T0+10
    for t in (T0 + 10, T0 + 5):
        after, outcome = push(state, "binance", 60000.0, t, now_s=T0 + 30)
        assert not outcome.accepted and outcome.reason is RejectReason.replayed
        assert after is state
    after, outcome = push(state, "binance", 60000.0, T0 + 36, now_s=T0 + 30)
    assert outcome.reason is RejectReason.future and after is state
    assert outcome.message == "timestamp 1795593636 is 6 s after the clock 1795593630 (future_skew_s_max 5 s)"
    assert outcome.mark == mark_at(state, T0 + 30, P)
    after, outcome = push(state, "binance", 60000.0, T0 + 35, now_s=T0 + 30)  # within the skew
    assert outcome.accepted


@pytest.mark.parametrize(
    ("price", "confidence", "volume"),
    [(math.nan, None, None), (-1.0, None, None), (0.0, None, None), (math.inf, None, None),
     (60000.0, math.nan, None), (60000.0, -1.0, None), (60000.0, None, -1.0), (60000.0, None, math.inf)],
)  # fmt: skip
def test_e_nonsense_prices_are_invalid(price, confidence, volume):
    state, _ = steady(20)
    after, outcome = push(state, "binance", price, T0 + 30, confidence=confidence, volume=volume)
    assert not outcome.accepted and outcome.reason is RejectReason.invalid
    assert after is state and outcome.mark.price == 60000.0


def test_low_confidence_is_rejected_and_wide_confidence_degrades():
    state, _ = steady(20)
    _, outcome = push(state, "binance", 60000.0, T0 + 30, confidence=1201.0)  # 2.002% > 2%
    assert outcome.reason is RejectReason.low_confidence
    assert outcome.message == "confidence +/-1201 is 2.00% of price, max 2.00%"
    for k, source in enumerate(SOURCES):
        state, outcome = push(state, source, 60000.0, T0 + 30 + k, confidence=600.0)  # 1% each
    assert outcome.accepted and outcome.mark.status is OracleStatus.degraded
    assert "wide confidence: median +/-1.00% > 0.50%" in outcome.mark.reason


def test_too_many_sources():
    params = OracleParams(sources_max=2)
    state, _ = push(OracleState("BTC"), "a", 100.0, T0, params)
    state, _ = push(state, "b", 100.0, T0, params)
    after, outcome = push(state, "c", 100.0, T0, params)
    assert outcome.reason is RejectReason.too_many_sources and after is state
    assert push(state, "a", 100.0, T0 + 1, params)[1].accepted  # known sources still update


def test_wrong_underlying_and_time_going_back_are_caller_errors():
    state, _ = steady(20)
    with pytest.raises(UnderlyingMismatch) as exc:
        push(state, "binance", 3000.0, T0 + 30, underlying="ETH")
    assert exc.value.field == "underlying"
    with pytest.raises(TimeWentBack) as exc:
        mark_at(state, T0, P)
    assert exc.value.field == "now_s"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"underlying": "btc"}, "underlying"), ({"source": "two words"}, "source"), ({"source": "a=b"}, "source"),
     ({"timestamp_s": -1}, "timestamp_s"), ({"timestamp_s": 1.5}, "timestamp_s"), ({"price": "60000"}, "price"),
     ({"confidence": True}, "confidence")],
)  # fmt: skip
def test_price_update_checks_its_fields(kwargs, field):
    fields = {"underlying": "BTC", "source": "binance", "price": 60000.0, "confidence": None, "timestamp_s": T0}
    with pytest.raises(InputError) as exc:
        PriceUpdate(**(fields | kwargs))
    assert exc.value.field == field


# (f) circuit breaker


def test_f_circuit_breaker_halts_on_an_absurd_move_and_says_why():
    state, _ = steady(120, price=100.0)
    state, outcome = push(state, "binance", 200.0, T0 + 120)
    assert outcome.mark.status is OracleStatus.ok  # one source: the median ignores it
    state, outcome = push(state, "kraken", 200.0, T0 + 121)  # now the median is 200
    assert outcome.mark.status is OracleStatus.halted
    assert outcome.mark.price == 100.0  # held
    assert outcome.mark.reason == (
        "circuit breaker: the sources' median moved from 100 to 200 (+100.0%) within 300 s, beyond halt_move_ratio 0.5"
    )
    for t in range(T0 + 130, T0 + 420, 10):  # the sources stay at 200
        for k, source in enumerate(SOURCES):
            state, outcome = push(state, source, 200.0, t + k)
        assert outcome.mark.status is OracleStatus.halted
        assert outcome.mark.price == 100.0
    # over 300 s after the last median of 100 (T0+121) the window holds only 200s: the mark follows at the jump limit
    state, outcome = push(state, "binance", 200.0, T0 + 422)  # 10 s after the last held mark
    assert outcome.mark.status is OracleStatus.degraded and outcome.mark.jump_limited
    assert outcome.mark.price == pytest.approx(105.0)


def test_a_crash_within_the_breaker_is_not_halted():
    state, _ = steady(120, price=100.0)
    for k, source in enumerate(SOURCES):  # -30%: max / min 1.43 < 1.5
        state, outcome = push(state, source, 70.0, T0 + 120 + k)
    assert outcome.mark.status is OracleStatus.degraded and outcome.mark.jump_limited


# averages and bounds


def test_twap_ema_and_vwap_hand_worked():
    params = OracleParams(sources_min=1)
    state, _ = push(OracleState("BTC"), "a", 100.0, T0, params, volume=1.0)
    state, outcome = push(state, "a", 108.0, T0 + 60, params, volume=3.0)
    assert outcome.mark.price == 108.0  # 8% from the TWAP (100), within 30% allowed over 60 s
    mark = mark_at(state, T0 + 120, params)
    assert mark.twap == pytest.approx(104.0)  # (100 * 60 + 108 * 60) / 120
    assert mark.ema == pytest.approx(104.0)  # 108 + (100 - 108) / 2 after one 60-s half-life
    assert mark.vwap == pytest.approx(106.0)  # (100 * 1 + 108 * 3) / 4


def test_histories_stay_bounded():
    state, _ = steady(7200)
    assert len(state.marks) <= P.twap_window_s + 2
    assert len(state.medians) <= P.halt_window_s + 2
    assert state.marks[0].time_s <= state.clock_s - P.twap_window_s < state.marks[1].time_s
    assert len(state.quotes) == 3
