"""Double-entry ledger in integer smallest units.

Every movement of money is a `Transfer` from one ledger account to another, so the sum over all
ledger accounts of each asset is zero at all times. `external` is the world outside: its balance
is minus the net deposits. `withdrawals_pending` holds what traders asked to withdraw until custody
pays it out or returns it. The others: `user:<id>` (an account's free collateral),
`user:<id>/<instrument>` (collateral allocated to an isolated position), `settlement` (perp and
option clearing), `insurance` (insurance fund), `insurance:<perp>` (an isolated market's own fund,
dYdX v4's `insurance_fund:<perpetual id>`) and `fees` (fee pool).
"""

from __future__ import annotations

from dataclasses import dataclass

from margin_engine.errors import InvariantViolation
from margin_engine.ledger.overlay import Overlay

EXTERNAL = "external"
SETTLEMENT = "settlement"
INSURANCE = "insurance"
FEES = "fees"
PENDING = "withdrawals_pending"
SYSTEM_ACCOUNTS = (EXTERNAL, SETTLEMENT, INSURANCE, FEES, PENDING)


USER_PREFIX = "user:"
MARKET_FUND_PREFIX = f"{INSURANCE}:"


def user_key(account: str) -> str:
    return f"{USER_PREFIX}{account}"


def allocation_key(account: str, instrument: str) -> str:
    return f"{USER_PREFIX}{account}/{instrument}"


def market_fund_key(instrument: str) -> str:
    """The insurance fund of an isolated market (`perp.isolated_market`)."""
    return f"{MARKET_FUND_PREFIX}{instrument}"


def is_fund(key: str) -> bool:
    """The main insurance fund or an isolated market's."""
    return key == INSURANCE or key.startswith(MARKET_FUND_PREFIX)


@dataclass(frozen=True)
class Transfer:
    debit: str  # the ledger account money leaves
    credit: str  # the ledger account money enters
    asset: str
    amount: int
    reason: str

    def check(self) -> None:
        """Paired check before a transfer touches balances: a bug, never bad input."""
        if type(self.amount) is not int or self.amount <= 0:
            raise InvariantViolation(f"transfer amount must be a positive int, got {self.amount!r} ({self.reason})")
        if self.debit == self.credit:
            raise InvariantViolation(f"transfer from {self.debit} to itself ({self.reason})")


class Ledger:
    """Balances by (ledger account, asset); only `post` changes them."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], int] = {}

    def overlay(self) -> Ledger:
        """A scratch copy whose writes stay in a layer of their own (for what-if checks)."""
        scratch = Ledger()
        scratch.balances = Overlay(self.balances)  # type: ignore[assignment]
        return scratch

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ledger) and dict(self.balances) == dict(other.balances)

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as dict

    def balance(self, account: str, asset: str) -> int:
        return self.balances.get((account, asset), 0)

    def post(self, t: Transfer) -> None:
        t.check()
        self.balances[(t.debit, t.asset)] = self.balance(t.debit, t.asset) - t.amount
        self.balances[(t.credit, t.asset)] = self.balance(t.credit, t.asset) + t.amount
