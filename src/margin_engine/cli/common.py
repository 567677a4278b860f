"""What every command shares: output formats, the profile option, and bad input as one line
with exit code 2."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from margin_engine.errors import InputError
from margin_engine.margin.profile import packaged_profiles

EXIT_BAD_INPUT = 2
EXIT_BROKEN = 3  # a journal that contradicts itself (or cannot be read): investigate, do not retry


class Format(StrEnum):
    table = "table"
    json = "json"


PROFILE_HELP = (
    f"Packaged profile ({', '.join(packaged_profiles())}; `margin-engine profiles` says whose rules and"
    " where each comes from) or a .toml path."
)
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help=PROFILE_HELP)]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table for people, json for programs.")]


def fail(exc: InputError) -> typer.Exit:
    typer.echo(f"error: {exc.field}: {exc.message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def broken(exc: Exception) -> typer.Exit:
    typer.echo(f"journal broken: {exc}", err=True)
    return typer.Exit(EXIT_BROKEN)


def console() -> Console:
    return Console(width=max(Console().width, 140))


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
