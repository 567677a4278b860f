"""Properties of the guarded mark after any sequence of updates (hypothesis).

(d) With status ok or degraded, the mark lies between the previous mark and the fresh sources:
    within [min(prev, min fresh), max(prev, max fresh)] always (the jump limit moves it toward the
    sources, never past them nor away), and within [min fresh, max fresh] whenever the jump limit
    did not bind. Stale or halted, the mark is the previous one.
Also: an update's outcome is `mark_at` of the new state at the same time, a rejection changes
nothing, and the histories stay bounded.
"""

from hypothesis import event, given, settings
from hypothesis import strategies as st

from margin_engine.oracle import OracleParams, OracleState, OracleStatus, PriceUpdate, apply_update, mark_at

T0 = 1795593600
P = OracleParams()

steps = st.lists(
    st.tuples(
        st.integers(0, 3),  # source
        st.one_of(st.floats(0.8, 1.25), st.floats(0.3, 3.0)),  # price / 100: mostly calm, sometimes wild
        st.integers(0, 40),  # seconds the clock moves before this update
        st.integers(-8, 90),  # how old the update is when received (negative: from the future)
        st.one_of(st.none(), st.floats(0, 2.5)),  # confidence, USD
    ),
    min_size=1,
    max_size=80,
)


def fresh_prices(state, now_s):
    return [q.price for q in state.quotes if now_s - q.timestamp_s <= P.staleness_s_max]


def check_mark(mark, prev, fresh):
    if mark.status in (OracleStatus.stale, OracleStatus.halted):
        assert mark.price == prev
        return
    assert mark.price is not None and mark.price > 0
    assert min(fresh + [prev or fresh[0]]) <= mark.price <= max(fresh + [prev or fresh[0]])
    if not mark.jump_limited:
        assert min(fresh) <= mark.price <= max(fresh)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 200))
def test_d_mark_between_previous_mark_and_fresh_sources(sequence, later_s):
    state = OracleState("BTC")
    now_s = T0
    for source, ratio, dt, lag, confidence in sequence:
        now_s += dt
        update = PriceUpdate("BTC", f"s{source}", 100 * ratio, confidence, max(now_s - lag, 0))
        prev = state.mark.price if state.mark else None
        after, outcome = apply_update(state, update, P, now_s)
        if not outcome.accepted:
            assert after is state
            continue
        check_mark(outcome.mark, prev, fresh_prices(after, now_s))
        event(f"{outcome.mark.status}{' jump-limited' if outcome.mark.jump_limited else ''}")
        assert outcome.mark == mark_at(after, now_s, P)
        assert len(after.marks) <= P.twap_window_s + 2 and len(after.medians) <= P.halt_window_s + 2
        state = after
    if state.mark is not None:  # time passes without updates
        later = mark_at(state, now_s + later_s, P)
        check_mark(later, state.mark.price, fresh_prices(state, now_s + later_s))
