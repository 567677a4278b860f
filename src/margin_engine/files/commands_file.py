"""Command scripts: JSON Lines, one engine command per line; blank lines and `#` comments skipped.

The whole file is parsed before anything is applied, so a malformed line leaves the state
untouched and the error names the line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from margin_engine.engine.commands import Command, parse_command
from margin_engine.errors import InputError
from margin_engine.margin.profile import Profile
from margin_engine.reading import parse_json, read_text


def load_commands(path: Path, profile: Profile) -> list[tuple[int, dict[str, Any], Command]]:
    lines = read_text(path).splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        obj = parse_json(text, f"line {number}", "a JSON object")
        try:
            out.append((number, obj, parse_command(obj, profile)))
        except InputError as exc:
            raise InputError(f"line {number}: {exc.field}", exc.message) from None
    return out
