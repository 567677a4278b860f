"""`simulate()`: a stress scenario's paths x variants through the real engine, as `margin-engine
simulate` runs them (`simulation.sweep.run_sweep`), kept as a `SimulationReport` of DataFrames;
files (summary.json, report.html) only when `out` is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from margin_engine.api import _tables
from margin_engine.errors import InputError
from margin_engine.simulation.report import summarize, write_report
from margin_engine.simulation.runner import PathResult
from margin_engine.simulation.scenario import Scenario, load_scenario, parse_scenario
from margin_engine.simulation.sweep import run_sweep

KEY_METRICS = (
    "bad_debt_usd",
    "socialized_loss_usd",
    "fund_min_usd",
    "liquidation_count",
    "cascade_liquidations",
    "liquidation_to_mev_usd",
)


@dataclass(frozen=True)
class SimulationReport:
    """Every (variant, path) run: `results` (PathResult: metrics and series), `summary_json` (what
    summary.json holds: per variant each metric's mean and quantiles)."""

    scenario: Scenario
    results: tuple[PathResult, ...]
    summary_json: dict[str, Any]

    def to_pandas(self):
        """One row per (variant, path): price source, accounts, steps and every metric (`*_usd`,
        counts, `time_under_water_s`)."""
        rows = [
            {
                "variant": r.variant,
                "path": r.path,
                "price_source": r.price_source,
                "accounts": r.accounts,
                "steps": r.steps,
                **r.metrics,
            }
            for r in self.results
        ]
        return _tables.pandas().DataFrame(rows)

    def variants_to_pandas(self, stat: str = "mean"):
        """One row per variant, each metric's `stat` across paths (mean, q01, q50, q99 or max)."""
        if stat not in ("mean", "q01", "q50", "q99", "max"):
            raise InputError("stat", f"must be mean, q01, q50, q99 or max, got {stat!r}")
        rows = {v: {m: s[stat] for m, s in metrics.items()} for v, metrics in self.summary_json["variants"].items()}
        df = _tables.pandas().DataFrame.from_dict(rows, orient="index")
        df.index.name = "variant"
        return df

    def series_to_pandas(self, variant: str | None = None, path: int = 0):
        """One path's time series, one row per step from 0 (flows, recorded per step, start at 1)."""
        name = variant if variant is not None else self.results[0].variant
        match = [r for r in self.results if r.variant == name and r.path == path]
        if not match:
            raise InputError("variant", f"no run ({name!r}, path {path}); variants: {', '.join(self._variants())}")
        series = match[0].series
        n = max((len(v) for v in series.values()), default=0)
        pd = _tables.pandas()
        data = {k: [float("nan")] * (n - len(v)) + list(v) for k, v in series.items()}
        df = pd.DataFrame(data)
        df.index.name = "step"
        return df

    def _variants(self) -> list[str]:
        return list(self.summary_json["variants"])

    def _rows(self) -> list[tuple]:
        v = self.summary_json["variants"]
        return [(name, *(v[name].get(m, {}).get("mean") for m in KEY_METRICS)) for name in self._variants()]

    def summary(self) -> str:
        """Scenario settings, then each variant's mean of the key metrics across paths."""
        s = self.summary_json
        table = _tables.text_table(("variant", *KEY_METRICS), self._rows())
        pairs = [
            ("Scenario", s["scenario"]),
            ("Profile", s["profile"]),
            ("Paths", s["paths"]),
            ("Seed", str(s["seed"])),
            ("Steps", s["steps"]),
            ("Step (s)", s["dt_s"]),
            ("Accounts", s["accounts"]),
            ("Variants", len(self._variants())),
        ]
        lines = _tables.banner("Stress simulation", pairs, len(table[0]))
        notes = [f"prices: {p}" for p in s.get("price_source", [])] + [f"means across {s['paths']} path(s)"]
        return "\n".join([*lines, *table, *notes])

    def _repr_html_(self) -> str:
        s = self.summary_json
        caption = f"{s['scenario']}: mean across {s['paths']} path(s)"
        return _tables.html_table(("variant", *KEY_METRICS), self._rows(), caption)

    def __repr__(self) -> str:
        return (
            f"SimulationReport(scenario={self.scenario.name!r}, variants={self._variants()}, "
            f"paths={self.scenario.paths})"
        )


def simulate(
    scenario: str | Path | Mapping | Scenario,
    *,
    paths: int | None = None,
    seed: int | None = None,
    variants: Sequence[str] | None = None,
    workers: int = 1,
    out: str | Path | None = None,
) -> SimulationReport:
    """Run a scenario (a TOML path, a dict of its keys or a Scenario): `paths` and `seed` override the
    file's, `variants` keeps only those named (in the file's order), `workers` runs paths in local
    processes. Results do not depend on `workers`. With `out`, writes summary.json and report.html."""
    if isinstance(scenario, Scenario):
        sc = scenario
    elif isinstance(scenario, Mapping):
        sc = parse_scenario(dict(scenario), "<dict>", ".")
    elif isinstance(scenario, str | Path):
        sc = load_scenario(scenario)
    else:
        raise InputError("scenario", f"expected a TOML path, a dict or a Scenario, got {type(scenario).__name__}")
    update: dict[str, Any] = {k: v for k, v in (("paths", paths), ("seed", seed)) if v is not None}
    if variants is not None:
        wanted = [variants] if isinstance(variants, str) else list(variants)
        known = [v.name for v in sc.all_variants()]
        for name in wanted:
            if name not in known:
                raise InputError("variants", f"no variant {name!r} in {sc.name}; it has {', '.join(known)}")
        update["variants"] = [v.model_dump() for v in sc.all_variants() if v.name in wanted]
    if update:
        sc = parse_scenario({**sc.model_dump(), **update}, sc.name, sc.base_dir)
    results = run_sweep(sc, workers)
    summary = write_report(Path(out), sc, results) if out is not None else summarize(sc, results)
    return SimulationReport(sc, tuple(results), summary)
