"""`margin-engine journal init|submit|replay|audit`: create a durable journal, append a command script,
replay and audit it.

DB is an SQLite file path or a database URL (`postgresql+psycopg://user:pass@host/db`). Bad input
(no journal there, a malformed script, an unknown profile) exits 2 with one line and writes nothing; a
journal that contradicts itself (a broken hash chain, a replay that misses its snapshot, a broken audit) exits 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from margin_engine.cli.common import EXIT_BROKEN, Format, FormatOpt, ProfileOpt, console, fail, print_json
from margin_engine.errors import InputError
from margin_engine.files.commands_file import load_commands
from margin_engine.ledger.units import format_units
from margin_engine.margin.profile import profile_text
from margin_engine.storage import (
    BATCH_MAX,
    SNAPSHOT_EVERY,
    Journal,
    JournalCorrupt,
    JournalWriteFailed,
    Receipt,
    audit_journal,
    database_url,
    replay_journal,
)

DbArg = Annotated[str, typer.Argument(help="SQLite file, or a database URL such as postgresql+psycopg://...")]


def init(db: DbArg, profile: ProfileOpt = "deribit") -> None:
    """Create a journal holding the profile's TOML."""
    try:
        with Journal.create(database_url(db), profile_text(profile)) as journal:
            name = journal.profile.name
    except InputError as exc:
        raise fail(exc) from None
    except JournalWriteFailed as exc:
        raise _stop(f"error: {exc}") from None
    typer.echo(f"created a journal in {db} with profile {name}")


def submit(
    db: DbArg,
    file: Annotated[Path, typer.Argument(help="Engine commands, one JSON object per line.")],
    client_ids: Annotated[
        str | None,
        typer.Option(
            "--client-ids", help="Give line N the client id PREFIX+N, so that running the script again adds nothing."
        ),
    ] = None,
    snapshot_every: Annotated[int, typer.Option(help="Commands between snapshots.")] = SNAPSHOT_EVERY,
    format: FormatOpt = Format.table,
) -> None:
    """Append a command script to a journal, in transactions of up to 1000 commands."""
    try:
        with Journal.open(database_url(db), snapshot_every=snapshot_every) as journal:
            lines = load_commands(file, journal.profile)  # the whole script parses before anything is written
            engine = journal.load()
            items = [(raw, None if client_ids is None else f"{client_ids}{line}") for line, raw, _ in lines]
            receipts: list[Receipt] = []
            for start in range(0, len(items), BATCH_MAX):
                results = journal.submit_batch(engine, items[start : start + BATCH_MAX])
                for (line, _, _), result in zip(lines[start:], results, strict=False):
                    if isinstance(result, InputError):  # a client id taken by another command: parsing passed above
                        raise InputError(
                            f"line {line}: {result.field}", f"{result.message}; the lines without this fault went in"
                        )
                    receipts.append(result)
    except InputError as exc:
        raise fail(exc) from None
    except JournalWriteFailed as exc:
        raise _stop(f"error: {exc}") from None
    except JournalCorrupt as exc:
        raise _stop(f"journal broken: {exc}") from None
    if format is Format.json:
        print_json([r.to_json() for r in receipts])
        return
    table = Table(title=f"Journaled into {db}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("line", "seq", "type", "outcome"):
        table.add_column(col, justify="right" if col in ("line", "seq") else "left")
    for (line, raw, _), receipt in zip(lines, receipts, strict=True):
        outcome = f"{len(receipt.outcome)} events" if receipt.accepted else f"[red]rejected {receipt.outcome.code}[/]"
        table.add_row(str(line), str(receipt.seq), str(raw.get("type")), outcome)
    console().print(table)


def replay(db: DbArg, format: FormatOpt = Format.table) -> None:
    """Rebuild the state from every event since the first, and check it against the latest snapshot."""
    try:
        with Journal.open(database_url(db)) as journal:
            report = replay_journal(journal)
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise _stop(f"journal broken: {exc}") from None
    if format is Format.json:
        print_json(report.to_json())
        return
    checked = (
        "no snapshot to check against"
        if report.snapshot_seq is None
        else f"matches the snapshot at command {report.snapshot_seq}"
    )
    typer.echo(
        f"replayed {report.commands} commands, {report.events} events: {checked}; state sha256 {report.state_hash}"
    )


def audit(db: DbArg, format: FormatOpt = Format.table) -> None:
    """Replay the whole history checking conservation and every outcome after each command; print the totals."""
    try:
        with Journal.open(database_url(db)) as journal:
            report = audit_journal(journal)
            profile = journal.profile
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        raise _stop(f"journal broken: {exc}") from None
    totals = {
        asset: {k: format_units(v, profile.assets[asset].decimals) for k, v in row.items()}
        for asset, row in report.totals.items()
    }
    if format is Format.json:
        print_json(
            {
                "commands": report.commands,
                "events": report.events,
                "snapshots_checked": report.snapshots_checked,
                "state_hash": report.state_hash,
                "conservation": totals,
            }
        )
        return
    out = console()
    out.print(
        f"audited {report.commands} commands, {report.events} events, {report.snapshots_checked} snapshots: "
        "conservation held after every command"
    )
    out.print(_totals_table(totals))


def _totals_table(totals: dict[str, dict[str, str]]) -> Table:
    table = Table(title="Conservation per asset", title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("deposits", "withdrawals", "users", "insurance", "fees", "settlement", "pending")
    table.add_column("asset")
    for col in columns:
        table.add_column(col, justify="right")
    for asset, row in totals.items():
        table.add_row(asset, *(row[c] for c in columns))
    return table


def _stop(line: str) -> typer.Exit:
    typer.echo(line, err=True)
    return typer.Exit(EXIT_BROKEN)


journal_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="The durable journal: init, submit, replay, audit.",
)
journal_app.command()(init)
journal_app.command()(submit)
journal_app.command()(replay)
journal_app.command()(audit)
