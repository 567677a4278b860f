"""`margin-engine oracle FILE`: replay raw price updates through the oracle guards.

Prints, per update, what the guards made of it: accepted or why not, and the guarded mark, TWAP and
status after it; `--plot` draws the sources against the mark. Parameters come from the profile's `[oracle]`
section (per underlying where it says so); the profile also names the underlyings the file may quote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from margin_engine.cli.common import Format, FormatOpt, ProfileOpt, console, fail, print_json
from margin_engine.clock import format_time
from margin_engine.errors import InputError
from margin_engine.margin.profile import load_profile
from margin_engine.oracle.aggregator import OracleStatus
from margin_engine.oracle.feed_file import read_updates
from margin_engine.oracle.replay import ReplayStep, replay

STATUS_STYLE = {
    OracleStatus.ok: "green",
    OracleStatus.degraded: "yellow",
    OracleStatus.stale: "red",
    OracleStatus.halted: "bold red",
}


def oracle(
    file: Annotated[
        Path, typer.Argument(help="Raw updates: CSV timestamp,underlying,source,price[,confidence][,volume].")
    ],
    profile: ProfileOpt = "deribit",
    format: FormatOpt = Format.table,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the sources against the mark into this PNG.")
    ] = None,
) -> None:
    """Replay raw price updates through the oracle guards: the guarded mark, TWAP and status after each."""
    try:
        prof = load_profile(profile)
        updates = read_updates(file)
        for line, update in enumerate(updates, start=2):
            prof.underlying(update.underlying, f"line {line}: underlying")
        steps = replay(updates, prof.oracle.params_for)
        if plot is not None:
            _plot(steps, plot)
    except InputError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print_json([_step_json(step) for step in steps])
    else:
        console().print(_table(steps, file.name))


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those are written as strings ("nan")."""
    return value if value is None or math.isfinite(value) else repr(value)


def _step_json(step: ReplayStep) -> dict:
    mark = step.outcome.mark
    return {
        "timestamp": format_time(step.update.timestamp_s),
        "underlying": step.update.underlying,
        "source": step.update.source,
        "price": _number(step.update.price),
        "accepted": step.outcome.accepted,
        "reason": step.outcome.reason,
        "mark": mark.price,
        "twap": mark.twap,
        "ema": mark.ema,
        "status": mark.status,
        "status_reason": mark.reason,
    }


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:.8g}"


def _table(steps: Sequence[ReplayStep], name: str) -> Table:
    """Times as HH:MM:SS under a dated title when the file covers one UTC day, to leave room for the reasons."""
    days = {format_time(s.update.timestamp_s)[:10] for s in steps}
    one_day = len(days) == 1
    title = f"Oracle replay of {name}" + (f", {days.pop()} (UTC)" if one_day else "")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("time", "underlying", "source", "price", "outcome", "mark", "TWAP", "status", "reason"):
        table.add_column(
            col,
            justify="right" if col in ("price", "mark", "TWAP") else "left",
            no_wrap=col != "reason",
        )
    for step in steps:
        outcome, mark = step.outcome, step.outcome.mark
        table.add_row(
            format_time(step.update.timestamp_s)[11:19] if one_day else format_time(step.update.timestamp_s),
            step.update.underlying,
            step.update.source,
            _price(step.update.price),
            "accepted" if outcome.accepted else f"[red]rejected {outcome.reason}[/]",
            _price(mark.price),
            _price(mark.twap),
            f"[{STATUS_STYLE[mark.status]}]{mark.status}[/]",
            mark.reason if outcome.accepted else outcome.message,
        )
    return table


def _plot(steps: Sequence[ReplayStep], path: Path) -> None:
    """One panel per underlying: each source's accepted prices (rejected ones as x), the mark and TWAP,
    with stale and halted stretches shaded."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot", "needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    underlyings = sorted({s.update.underlying for s in steps})
    fig, axes = plt.subplots(len(underlyings), 1, figsize=(11, 4 * len(underlyings)), squeeze=False)
    for ax, underlying in zip(axes[:, 0], underlyings, strict=True):
        mine = [s for s in steps if s.update.underlying == underlying]
        t0 = mine[0].now_s
        for source in sorted({s.update.source for s in mine}):
            theirs = [s for s in mine if s.update.source == source]
            accepted = [s for s in theirs if s.outcome.accepted]
            rejected = [s for s in theirs if not s.outcome.accepted and math.isfinite(s.update.price)]
            (line,) = ax.plot(*_xy(accepted, t0), ".", ms=4, alpha=0.7, label=source)
            ax.plot(*_xy(rejected, t0), "x", color=line.get_color())
        marked = [s for s in mine if s.outcome.mark.price is not None]
        ax.step(
            [s.now_s - t0 for s in marked],
            [s.outcome.mark.price for s in marked],
            "k-",
            where="post",
            lw=1.6,
            label="mark",
        )
        ax.plot(
            [s.now_s - t0 for s in marked],
            [s.outcome.mark.twap for s in marked],
            "--",
            color="grey",
            lw=1,
            label="TWAP",
        )
        for s, after in zip(mine, [*mine[1:], None], strict=True):
            if s.outcome.mark.status in (OracleStatus.stale, OracleStatus.halted):
                end_s = s.now_s if after is None else after.now_s
                ax.axvspan(s.now_s - t0, end_s - t0, color="red", alpha=0.12, lw=0)
        ax.set_title(f"{underlying} from {format_time(t0)}")
        ax.set_xlabel("seconds")
        ax.set_ylabel("USD")
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError("--plot", f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)


def _xy(steps: Sequence[ReplayStep], t0: int) -> tuple[list[int], list[float]]:
    return [s.update.timestamp_s - t0 for s in steps], [s.update.price for s in steps]
