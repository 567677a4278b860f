"""`margin-engine`: margin of a portfolio file, engine command scripts, and a guided demo.

Bad input exits with code 2 and one line naming the field; nothing is applied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from margin_engine.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN,
    Format,
    FormatOpt,
    ProfileOpt,
    broken,
    console,
    fail,
    print_json,
)
from margin_engine.cli.oracle_admin import oracle_app
from margin_engine.cli.simulate_cmd import backtest, simulate
from margin_engine.cli.storage_cmd import journal_app
from margin_engine.engine import Engine, Rejection, State, audit
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.files.commands_file import load_commands
from margin_engine.files.portfolio import load_portfolio
from margin_engine.ledger.units import format_units, human_amount
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile, packaged_profiles

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="A deterministic margin engine for crypto options and perpetuals.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"margin-engine {version('margin-engine')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A deterministic margin engine for crypto options and perpetuals."""


@app.command()
def margin(
    file: Annotated[Path, typer.Argument(help="Portfolio file, JSON or TOML.")],
    profile: ProfileOpt = "deribit",
    format: FormatOpt = Format.table,
    explain: Annotated[
        bool, typer.Option("--explain", help="Portfolio margin: scenario P&L and contributions.")
    ] = False,
) -> None:
    """Margin of every account in a portfolio file."""
    from margin_engine.cli.render import print_margins

    try:
        prof = load_profile(profile)
        portfolio = load_portfolio(file, prof)
        results = compute_margins(portfolio.accounts, portfolio.markets, prof, portfolio.valuation_s, explain=explain)
    except InputError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print_json({"profile": prof.name, "accounts": [m.to_json() for m in results]})
    else:
        print_margins(console(), results, title=f"Margin ({prof.name} profile)")


@app.command("what-if")
def what_if(
    file: Annotated[Path, typer.Argument(help="Portfolio file, JSON or TOML.")],
    account: Annotated[str, typer.Option("--account", help="Account id in the file.")],
    trade: Annotated[list[str], typer.Option("--trade", help="INSTRUMENT:SIZE\\[@PRICE]; repeat for several.")],
    profile: ProfileOpt = "deribit",
    format: FormatOpt = Format.table,
) -> None:
    """Margin of one account before and after hypothetical trades; nothing is changed."""
    from margin_engine.cli.render import what_if_table
    from margin_engine.engine.what_if import state_of_views
    from margin_engine.engine.what_if import what_if as hypothetical

    try:
        prof = load_profile(profile)
        portfolio = load_portfolio(file, prof)
        ids = [a.id for a in portfolio.accounts]
        if account not in ids:
            raise InputError("--account", f"no account {account!r} in {file}; it has {', '.join(ids) or 'none'}")
        state = state_of_views(prof, portfolio.markets, portfolio.valuation_s, portfolio.accounts)
        result = hypothetical(state, account, trade)
    except InputError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print_json({"profile": prof.name, **result.to_json()})
    else:
        console().print(what_if_table(result))


@app.command()
def calibrate(
    file: Annotated[Path, typer.Argument(help="Daily prices: CSV with time,open,high,low,close,volume.")],
    underlying: Annotated[
        str | None, typer.Option(help="BTC, ETH...; needed unless the file name starts with it (btc-usd-...).")
    ] = None,
    model: Annotated[str, typer.Option(help="garch (arch, Student-t) or ewma (RiskMetrics 0.94).")] = "garch",
    tail: Annotated[str, typer.Option(help="student-t or historical (filtered historical simulation).")] = "student-t",
    confidence: Annotated[float, typer.Option(help="One-sided probability the range must cover.")] = 0.999,
    horizon_days: Annotated[float, typer.Option(help="Liquidation horizon in days.")] = 2.0,
    floor: Annotated[float, typer.Option(help="Smallest range.")] = 0.05,
    cap: Annotated[float, typer.Option(help="Largest range.")] = 0.5,
    max_change_per_day: Annotated[float, typer.Option(help="Largest change of the range per day.")] = 0.01,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Portfolio profile to start from.")] = "deribit-pm",
    out: Annotated[Path | None, typer.Option(help="Write the calibrated profile (TOML) here.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Recommend a portfolio-margin price range from realized volatility, and write a profile."""
    from margin_engine.calibration.price_range import RangeSettings, calibrate_range
    from margin_engine.calibration.prices import read_prices
    from margin_engine.calibration.profile_writer import with_price_range, write_profile
    from margin_engine.cli.render import calibration_table

    try:
        if model not in ("garch", "ewma"):
            raise InputError("--model", f"must be garch or ewma, got {model!r}")
        if tail not in ("student-t", "historical"):
            raise InputError("--tail", f"must be student-t or historical, got {tail!r}")
        prof = load_profile(profile)
        guess = file.name.split("-")[0].upper()
        if underlying is None and guess not in prof.underlyings:
            raise InputError(
                "--underlying",
                f"the file name {file.name!r} does not say the underlying; give --underlying "
                f"({', '.join(sorted(prof.underlyings))})",
            )
        u = underlying or guess
        prof.underlying(u, "--underlying")
        prices = read_prices(file)
        settings = RangeSettings(model, tail, confidence, horizon_days, floor, cap, max_change_per_day)  # type: ignore[arg-type]
        result = calibrate_range(prices.log_returns(), settings)
        note = (
            f"{u} range {result.recommended:.4f} from {file.name}: {model}, {tail} q{confidence}, "
            f"{horizon_days:g}-day horizon, floor {floor}, cap {cap}, max change {max_change_per_day}/day"
        )
        text = with_price_range(prof, u, result.recommended, note)
        if out is not None:
            write_profile(text, out)
    except InputError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print_json(
            {
                "underlying": u,
                "model": model,
                "tail": tail,
                "quantile": result.quantile,
                "dof": result.dof,
                "sigma_daily": float(result.sigma[-1]),
                "raw_range": float(result.raw_range[-1]),
                "recommended_range": result.recommended,
                "profile": None if out is None else str(out),
            }
        )
    else:
        console().print(calibration_table(u, prices.time_s[1:], result))
        if out is not None:
            console().print(f"wrote {out}")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Engine commands, one JSON object per line.")],
    profile: ProfileOpt = "deribit",
    format: FormatOpt = Format.table,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any command was rejected (after printing everything).")
    ] = False,
) -> None:
    """Apply a script of engine commands; print every event or rejection, the final state and margins."""
    from margin_engine.cli.render import print_margins, state_tables
    from margin_engine.engine.describe import FORMAT_VERSION, event_view
    from margin_engine.engine.views import state_json

    try:
        prof = load_profile(profile)
        commands = load_commands(file, prof)
    except InputError as exc:
        raise fail(exc) from None
    engine = Engine(prof)
    results = []
    rejected = 0
    out = console()
    for line, raw, command in commands:
        try:
            outcome = engine.apply(command)
            audit(engine.state)  # conservation after every command: a break is a bug and stops the run
        except InvariantViolation as exc:
            typer.echo(f"bug: line {line}: {exc}", err=True)
            raise typer.Exit(EXIT_BROKEN) from None
        entry = {"line": line, "command": _plain(raw)}
        if isinstance(outcome, Rejection):
            rejected += 1
            entry["rejection"] = outcome.to_json()
        else:
            entry["events"] = [event_view(e, prof) for e in outcome]
        results.append(entry)
        if format is Format.table:
            _print_outcome(out, line, raw, outcome, prof)
    margins = engine.margins()
    state_obj = state_json(engine.state)
    if format is Format.json:
        print_json(
            {
                "format_version": FORMAT_VERSION,
                "profile": prof.name,
                "rejected": rejected,
                "liquidation_queue": _queue_json(engine.liquidation_queue(), prof),
                "results": results,
                "state": state_obj,
                "margin": {"accounts": [m.to_json() for m in margins]},
                "conservation": _conservation(engine.state),
            }
        )
    else:
        for table in state_tables(state_obj):
            out.print(table)
        print_margins(out, margins, title="Margin")
        queue = engine.liquidation_queue()
        if queue:
            d, cash = prof.settlement_decimals, prof.settlement_asset
            out.print(
                "Liquidation queue, worst first: "
                + ", ".join(
                    f"{q['account']} (equity {human_amount(q['equity'], d, cash)}, "
                    f"maintenance {human_amount(q['maintenance_margin'], d, cash)})"
                    for q in queue
                ),
                highlight=False,
            )
        if rejected:
            out.print(f"{rejected} of {len(commands)} commands rejected" + (" (--strict: exit 1)" if strict else ""))
    if strict and rejected:
        raise typer.Exit(1)


def _queue_json(queue: list[dict], profile) -> list[dict]:
    d = profile.settlement_decimals
    return [
        {
            "account": q["account"],
            "equity": format_units(q["equity"], d),
            "maintenance_margin": format_units(q["maintenance_margin"], d),
        }
        for q in queue
    ]


def _plain(obj):
    return json.loads(json.dumps(obj, default=str))


def _conservation(state: State) -> dict:
    """The audit's per-asset totals as decimal strings."""
    return {
        asset: {k: format_units(v, state.profile.assets[asset].decimals) for k, v in row.items()}
        for asset, row in audit(state).items()
    }


def _print_outcome(console: Console, line: int, raw: dict, outcome, profile) -> None:
    """One line per command, then one sentence per event: amounts with their asset, times in UTC."""
    from rich.markup import escape

    from margin_engine.engine.describe import describe, rejection_text

    head = f"[dim]{line:>4}[/] [bold]{escape(str(raw.get('type')))}[/]"
    if isinstance(outcome, Rejection):
        console.print(f"{head} [red]rejected[/] {escape(rejection_text(outcome))}", highlight=False)
        return
    console.print(head)
    for event in outcome:
        console.print(f"       {escape(describe(event, profile))}", highlight=False)


@app.command()
def demo(profile: ProfileOpt = "deribit") -> None:
    """A short guided scenario on embedded defaults: accounts, trades, a price move, margin before and after."""
    from margin_engine.cli.demo import run_demo

    try:
        run_demo(console(), load_profile(profile))
    except InputError as exc:
        raise fail(exc) from None


@app.command()
def profiles(fmt: FormatOpt = Format.table) -> None:
    """The packaged profiles: whose rules each follows, which version of them, and where every number comes from."""
    rows = []
    for name in packaged_profiles():
        p = load_profile(name)
        about = p.about
        rows.append(
            {
                "name": name,
                "venue": about.venue if about else "",
                "version": about.version if about else "",
                "margin": "standard + portfolio" if p.portfolio else "standard",
                "liquidation": p.liquidation.mechanism,
                "source": about.source if about else "",
                "description": p.description,
            }
        )
    if fmt is Format.json:
        print_json(rows)
        return
    table = Table(title="Packaged profiles (--profile NAME)", title_justify="left")
    for column in ("name", "venue", "version", "margin", "liquidation", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("name", "venue", "version", "margin", "liquidation", "source")))
    console().print(table)


app.add_typer(oracle_app, name="oracle")
app.add_typer(journal_app, name="journal")
app.command("simulate")(simulate)
app.command("backtest")(backtest)


@app.command()
def serve(
    db: Annotated[str, typer.Option(help="Journal database: an SQLite path or a SQLAlchemy URL.")] = "margin-engine.db",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="A new journal's profile (packaged name or .toml; deribit if not given). For an existing journal, "
            "leave it out: the journal keeps its own, and a different one is refused.",
        ),
    ] = None,
    init: Annotated[bool, typer.Option("--init", help="Create the journal if the database holds none.")] = False,
    log_commands: Annotated[bool, typer.Option(help="One JSON line per command on stderr.")] = True,
) -> None:
    """Run the HTTP service (FastAPI + uvicorn) on a durable journal; the desk page is at /."""
    import logging

    import uvicorn

    from margin_engine.service.app import create_app, open_journal
    from margin_engine.service.settings import Settings
    from margin_engine.storage.journal import JournalCorrupt

    if log_commands:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("margin_engine.commands").setLevel(logging.INFO)
    try:
        settings = Settings(db_url=db, init=init, **({} if profile is None else {"profile": profile}))
        settings.profile_text()
        journal = open_journal(settings)
        engine = journal.load()
        keys = _active_keys(db)
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise broken(exc) from None
    url = f"http://{host}:{port}"
    typer.echo(
        f"margin-engine serving {url}/ (API docs at {url}/docs) on database {db} with profile {journal.profile.name} "
        f"({journal.last_seq} commands journaled)",
        err=True,
    )
    if keys == 0:
        typer.echo(f"no API keys yet: run `margin-engine create-key admin --db {db}`", err=True)
    else:
        typer.echo(f"{keys} API key(s); make more with `margin-engine create-key ROLE --db {db}`", err=True)
    uvicorn.run(
        create_app(settings, journal, engine),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # SIGTERM stops the server even with streams open
    )


def _active_keys(db: str) -> int:
    """How many keys the (existing) journal's database holds that are not revoked."""
    import sqlalchemy as sa

    from margin_engine.service.keys import KeyStore
    from margin_engine.storage.journal import JournalCorrupt, database_url

    engine = sa.create_engine(database_url(db))
    try:
        return sum(not k["revoked"] for k in KeyStore(engine).list())
    except sa.exc.SQLAlchemyError as exc:
        raise JournalCorrupt(f"cannot read the API keys in {db}: {type(exc).__name__}") from None
    finally:
        engine.dispose()


def _key_store(db: str):
    """The API keys of an existing journal's database: a mistyped path is an error, not a new database."""
    import sqlalchemy as sa

    from margin_engine.service.keys import KeyStore
    from margin_engine.storage.journal import Journal, database_url

    Journal.open(database_url(db)).close()
    return KeyStore(sa.create_engine(database_url(db)))


@app.command("create-key")
def create_key(
    role: Annotated[str, typer.Argument(help="trader, custody, keeper, oracle or admin.")],
    db: Annotated[str, typer.Option(help="The service's database.")] = "margin-engine.db",
    account: Annotated[str | None, typer.Option(help="The account a trader (or keeper) key acts for.")] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from margin_engine.storage.journal import JournalCorrupt

    try:
        token = _key_store(db).create(role, account)
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise broken(exc) from None
    typer.echo(token)


@app.command("revoke-key")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id: the part between me_ and the next _ (see list-keys).")],
    db: Annotated[str, typer.Option(help="The service's database.")] = "margin-engine.db",
) -> None:
    """Revoke an API key; running servers refuse it within 5 seconds, and its desk sessions end."""
    from margin_engine.storage.journal import JournalCorrupt

    try:
        store = _key_store(db)
        if not store.revoke(key_id):
            raise InputError("key_id", f"no key {key_id!r} in {db}; list-keys shows them")
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise broken(exc) from None
    typer.echo(f"revoked {key_id}")


@app.command("list-keys")
def list_keys(
    db: Annotated[str, typer.Option(help="The service's database.")] = "margin-engine.db",
    format: FormatOpt = Format.table,
) -> None:
    """Every API key: id, role, account, revoked (secrets are never stored, so never shown)."""
    from rich.table import Table

    from margin_engine.storage.journal import JournalCorrupt

    try:
        keys = _key_store(db).list()
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise broken(exc) from None
    if format is Format.json:
        print_json(keys)
        return
    table = Table(title=f"API keys in {db}", title_justify="left")
    for col in ("key id", "role", "account", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k["key_id"], k["role"], k["account"] or "", "yes" if k["revoked"] else "no")
    console().print(table)


def main() -> None:
    """The console script: a usage error (an unknown option, a port out of range) is one line and exit 2,
    as every other error the user fixes."""
    import sys

    # click's UsageError, wherever this typer keeps click (its own copy since 0.26)
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    try:
        code = app(prog_name="margin-engine", standalone_mode=False)
    except usage_error as exc:
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
