"""`margin-engine oracle ...`: the oracle role's tools.

- `oracle FILE` (also `oracle replay FILE`): replay a feed through the guards (`oracle_cmd.py`);
- `oracle keygen [--out FILE]`: a new Ed25519 key for a price source, written 0600, never over a file;
- `oracle source add NAME --public-key HEX --db DB`, `oracle source list`, `oracle source revoke NAME`:
  the `register_source` / `revoke_source` commands, journaled in an existing journal.

Errors are one line: exit 2 for what the user fixes (a file that exists, no journal there, bad hex, a
rejection such as `source_exists`), 3 for a journal that contradicts itself or cannot be written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from typer.core import TyperGroup

from margin_engine.cli.common import EXIT_BAD_INPUT, EXIT_BROKEN, Format, FormatOpt, console, fail, print_json
from margin_engine.cli.oracle_cmd import oracle as replay
from margin_engine.errors import InputError

DbOpt = Annotated[str, typer.Option("--db", help="The journal's database: an SQLite path or a SQLAlchemy URL.")]


class ReplayByDefault(TyperGroup):
    """`oracle FILE ...` is `oracle replay FILE ...`: a first argument that names no subcommand (a feed
    file, an option of the replay) goes to the replay, so the command works as it always did."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["replay", *args]
        return super().parse_args(ctx, args)


def keygen(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (64 hex digits); never overwritten.")
    ] = Path("oracle.key"),
    format: FormatOpt = Format.table,
) -> None:
    """Make a price source's Ed25519 key: the private key to a new file (mode 0600), the public key printed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from margin_engine.oracle.signing import dump_private_key, dump_public_key

    key = Ed25519PrivateKey.generate()
    try:
        _write_new(out, dump_private_key(key) + "\n")
    except InputError as exc:
        raise fail(exc) from None
    public = dump_public_key(key.public_key())
    if format is Format.json:
        print_json({"public_key": public, "private_key_file": str(out)})
        return
    typer.echo(f"public key: {public}")
    typer.echo(f"private key: written to {out} (mode 0600); it signs as the source: keep it on the feeder's machine")
    typer.echo(f"next: margin-engine oracle source add NAME --public-key {public} --db margin-engine.db")


def _write_new(path: Path, text: str) -> None:
    """Create `path` readable by its owner only; an existing file (or link) is refused, never replaced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(
            "--out", f"{path} exists: a key is never overwritten; move it away or choose another file"
        ) from None
    except OSError as exc:
        raise InputError("--out", f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(fd, 0o600)  # whatever the umask
        f.write(text)


def _journal(db: str, command: dict[str, Any] | None) -> tuple[list[dict[str, Any]], Any]:
    """The registered sources of the journal at `db` after `command` (if any) was submitted, and its receipt."""
    from margin_engine.engine.oracle_feed import sources_json
    from margin_engine.storage import Journal, JournalCorrupt, JournalWriteFailed, database_url

    try:
        with Journal.open(database_url(db)) as journal:
            engine = journal.load()
            receipt = None if command is None else journal.submit(engine, command)
            return sources_json(engine.state), receipt
    except InputError as exc:
        raise fail(exc) from None
    except JournalCorrupt as exc:
        typer.echo(f"journal broken: {exc}", err=True)
        raise typer.Exit(EXIT_BROKEN) from None
    except JournalWriteFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BROKEN) from None


def _submit(db: str, command: dict[str, Any]) -> Any:
    _, receipt = _journal(db, command)
    if not receipt.accepted:
        typer.echo(f"error: {receipt.outcome.code}: {receipt.outcome.message}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    return receipt


def source_add(
    name: Annotated[str, typer.Argument(help="The source's name, as its updates carry it (coinbase, desk-1).")],
    public_key: Annotated[str, typer.Option("--public-key", help="Its Ed25519 public key: 64 hex digits.")],
    underlying: Annotated[
        list[str] | None, typer.Option("--underlying", help="An underlying it may quote; repeat; default all.")
    ] = None,
    db: DbOpt = "margin-engine.db",
) -> None:
    """Register a price source in a journal (register_source); run it while no server writes to that journal."""
    command: dict[str, Any] = {"type": "register_source", "source": name, "public_key": public_key}
    if underlying:
        command["underlyings"] = underlying
    receipt = _submit(db, command)
    (event,) = receipt.outcome
    typer.echo(
        f"registered price source {event.source} for {', '.join(event.underlyings)} in {db} (command {receipt.seq})"
    )


def source_revoke(
    name: Annotated[str, typer.Argument(help="A source registered with `oracle source add`.")],
    db: DbOpt = "margin-engine.db",
) -> None:
    """Revoke a price source (revoke_source): its later updates are refused; quotes it sent age out."""
    receipt = _submit(db, {"type": "revoke_source", "source": name})
    typer.echo(f"revoked price source {name} in {db} (command {receipt.seq})")


def source_list(db: DbOpt = "margin-engine.db", format: FormatOpt = Format.table) -> None:
    """The registered price sources: name, public key, underlyings, and who registered it (profile or command)."""
    sources, _ = _journal(db, None)
    if format is Format.json:
        print_json(sources)
        return
    table = Table(title=f"Price sources in {db}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("source", "public key", "underlyings", "registered by"):
        table.add_column(col, no_wrap=True)
    for s in sources:
        table.add_row(s["source"], s["public_key"], ", ".join(s["underlyings"]), s["registered_by"])
    console().print(table)


source_app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Registered price sources."
)
source_app.command("add")(source_add)
source_app.command("list")(source_list)
source_app.command("revoke")(source_revoke)

oracle_app = typer.Typer(
    cls=ReplayByDefault,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="The oracle: replay a feed (oracle FILE), make a source's key, register sources.",
)
oracle_app.command("replay")(replay)
oracle_app.command("keygen")(keygen)
oracle_app.add_typer(source_app, name="source")
