"""Pure building blocks of the stress simulator: price paths, market impact, backtests, run metrics, seeds.

One module per job: `paths` (GBM, Merton jumps, GARCH-t, implied vol that rises in a crash),
`history` (crash windows from price CSVs, GARCH-t fitted to them), `impact` (order book depth and a
constant-product pool, with resilience), `backtest` (Kupiec, Christoffersen, Basel zones),
`metrics` (insurance fund, bad debt, time under water, capital efficiency) and `seeds` (per-path
streams that do not depend on how the paths are split). See docs/simulation.md.
"""

from .backtest import (
    Independence,
    Kupiec,
    MarginBacktest,
    backtest_margin,
    basel_zone,
    christoffersen_independence,
    exceedances,
    kupiec_pof,
)
from .errors import BookExhaustedError, PriceWindowError, SimulationInputError
from .history import GarchFit, HistoricalPath, daily_log_returns, fit_garch_t, historical_path
from .impact import ConstantProductPool, DepthBook, ImpactedPath, Venue, execute, impacted_path, recover_mid
from .metrics import (
    RunMetrics,
    fund_minimum_usd,
    margin_per_notional,
    max_drawdown_usd,
    run_metrics,
    time_under_water_s,
)
from .paths import (
    BTC_CRASH_SPOT_VOL_BETA,
    GarchParams,
    JumpParams,
    ewma_realized_vol,
    garch_t_paths,
    gbm_paths,
    implied_vol_path,
    merton_paths,
)
from .seeds import chunk_paths, path_rngs

__all__ = [
    "BTC_CRASH_SPOT_VOL_BETA",
    "BookExhaustedError",
    "ConstantProductPool",
    "DepthBook",
    "GarchFit",
    "GarchParams",
    "HistoricalPath",
    "ImpactedPath",
    "Independence",
    "JumpParams",
    "Kupiec",
    "MarginBacktest",
    "PriceWindowError",
    "RunMetrics",
    "SimulationInputError",
    "Venue",
    "backtest_margin",
    "basel_zone",
    "christoffersen_independence",
    "chunk_paths",
    "daily_log_returns",
    "ewma_realized_vol",
    "exceedances",
    "execute",
    "fit_garch_t",
    "fund_minimum_usd",
    "garch_t_paths",
    "gbm_paths",
    "historical_path",
    "impacted_path",
    "implied_vol_path",
    "kupiec_pof",
    "margin_per_notional",
    "max_drawdown_usd",
    "merton_paths",
    "path_rngs",
    "recover_mid",
    "run_metrics",
    "time_under_water_s",
]
