"""Engine state as JSON for readers (CLI, service, dashboard): amounts as decimal strings."""

from __future__ import annotations

from margin_engine.clock import format_time
from margin_engine.engine.state import State
from margin_engine.ledger.ledger import FEES, INSURANCE, SETTLEMENT, allocation_key, market_fund_key, user_key
from margin_engine.ledger.units import format_units


def balances_json(state: State, key: str) -> dict[str, str]:
    p = state.profile
    return {
        a: format_units(state.ledger.balance(key, a), p.assets[a].decimals)
        for a in p.assets
        if state.ledger.balance(key, a)
    }


def account_json(state: State, account_id: str) -> dict:
    """One account: mode, free balances, positions (perp quotes, isolated collateral)."""
    p = state.profile
    account = state.accounts[account_id]
    positions = []
    for name, pos in account.positions.items():
        row = {"instrument": name, "size": format(pos.size, "f")}
        if not pos.instrument.is_option:
            row["quote"] = format_units(pos.quote, p.settlement_decimals)
        if account.mode == "isolated":
            held = state.ledger.balance(allocation_key(account.id, name), p.settlement_asset)
            row["collateral"] = format_units(held, p.settlement_decimals)
        positions.append(row)
    return {
        "id": account.id,
        "mode": account.mode,
        "balances": balances_json(state, user_key(account.id)),
        "positions": positions,
        "pending_withdrawals": [
            pending_json(state, w) for w in state.pending_withdrawals.values() if w.account == account.id
        ],
    }


def pending_json(state: State, w) -> dict:
    """A withdrawal waiting for custody, its amount in the asset's decimals."""
    return {
        "id": w.id,
        "account": w.account,
        "asset": w.asset,
        "amount": format_units(w.amount, state.profile.asset(w.asset).decimals),
        "requested_at": format_time(w.requested_s),
    }


def state_json(state: State) -> dict:
    """Balances, positions, insurance funds, fee pool and settlement account."""
    return {
        "time": None if state.now_s is None else format_time(state.now_s),
        "accounts": [account_json(state, a) for a in state.accounts],
        "insurance_fund": balances_json(state, INSURANCE),
        # isolated markets' own funds, by perp (perp.isolated_market)
        "market_funds": {
            f"{u}-PERP": balances_json(state, market_fund_key(f"{u}-PERP"))
            for u, params in state.profile.underlyings.items()
            if params.perp.isolated_market
        },
        "fee_pool": balances_json(state, FEES),
        "settlement": balances_json(state, SETTLEMENT),
    }
