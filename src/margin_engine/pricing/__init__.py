"""Option pricing: vectorized Black-76 prices, Greeks and implied volatility."""

from .black76 import SECONDS_PER_YEAR, Greeks, PricingInputError, black76, year_fraction
from .implied_vol import ImpliedVolError, ImpliedVolResult, implied_vol, implied_vol_result

__all__ = [
    "SECONDS_PER_YEAR",
    "Greeks",
    "ImpliedVolError",
    "ImpliedVolResult",
    "PricingInputError",
    "black76",
    "implied_vol",
    "implied_vol_result",
    "year_fraction",
]
