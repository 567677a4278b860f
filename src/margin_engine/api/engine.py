"""`run_engine()`: a script of engine commands through the engine, as `margin-engine run` does
(every command parsed before any runs, conservation audited after each), kept as a `RunReport`
with its events and rejections as DataFrames and the final margins; `load_journal()`: the engine of
a service's journal, to read offline."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from margin_engine.api import _tables
from margin_engine.api.inputs import resolve_profile
from margin_engine.api.margins import MarginReport
from margin_engine.api.margins import margin as _margin
from margin_engine.engine import Engine, Rejection, audit, parse_command
from margin_engine.engine.views import state_json
from margin_engine.errors import InputError
from margin_engine.files.commands_file import load_commands
from margin_engine.ledger.units import format_units
from margin_engine.margin.profile import Profile
from margin_engine.reading import parse_json

COMMAND_COLUMNS = ("step", "type", "outcome", "events", "code", "message")


@dataclass
class RunReport:
    """The engine after the script (`engine`, to keep driving it) and each command's outcome:
    `steps[i]` is (line or index, the command as given, its events or its Rejection)."""

    engine: Engine
    steps: list[tuple[int, dict[str, Any], Any]] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        return self.engine.state.profile

    @property
    def rejections(self) -> list[tuple[int, Rejection]]:
        return [(step, out) for step, _, out in self.steps if isinstance(out, Rejection)]

    def margin(self, explain: bool = False) -> MarginReport:
        """Margin of every account of the final state, at the engine's clock."""
        return _margin(self.engine, explain=explain)

    def state(self) -> dict[str, Any]:
        """Balances, positions, insurance fund, fee pool and settlement (`run --format json`'s state)."""
        return state_json(self.engine.state)

    def conservation(self) -> dict[str, dict[str, str]]:
        """Per asset: deposits, withdrawals and where the money is (the audit), as decimal strings."""
        assets = self.profile.assets
        return {
            a: {k: format_units(v, assets[a].decimals) for k, v in row.items()}
            for a, row in audit(self.engine.state).items()
        }

    def _command_rows(self) -> list[tuple]:
        rows: list[tuple] = []
        for step, raw, out in self.steps:
            if isinstance(out, Rejection):
                rows.append((step, raw.get("type"), "rejected", 0, out.code, out.message))
            else:
                rows.append((step, raw.get("type"), "applied", len(out), None, None))
        return rows

    def to_pandas(self):
        """One row per command: step (the file's line, or the list index), type, outcome (applied or
        rejected), the number of events, and a rejection's code and message."""
        return _tables.frame(COMMAND_COLUMNS, self._command_rows())

    def events_to_pandas(self):
        """One row per event: step, command, event (its type), then the event's fields as the engine
        writes them (amounts as integers in the asset's smallest units; see docs/formats.md)."""
        rows: list[tuple] = []
        for step, raw, out in self.steps:
            if isinstance(out, Rejection):
                continue
            for event in out:
                fields = event.to_json()
                kind = fields.pop("type")
                rows.append(
                    {
                        "step": step,
                        "command": raw.get("type"),
                        "event": kind,
                        **{k: _cell(v) for k, v in fields.items()},
                    }
                )
        pd = _tables.pandas()
        names = list(dict.fromkeys(["step", "command", "event", *(k for r in rows for k in r)]))
        data = {}
        for c in names:
            values = [r.get(c) for r in rows]
            present = [v for v in values if v is not None]
            exact = present and all(type(v) is int for v in present)  # integer units stay exact, gaps or not
            data[c] = pd.array(values, dtype="Int64") if exact else values
        return pd.DataFrame(data, columns=names)

    def summary(self) -> str:
        """Commands applied and rejected (with codes), events, the clock, then the final margins."""
        applied = sum(not isinstance(o, Rejection) for _, _, o in self.steps)
        events = sum(len(o) for _, _, o in self.steps if not isinstance(o, Rejection))
        s = self.engine.state
        pairs = [
            ("Profile", self.profile.name),
            ("Clock", self.state()["time"] or "-"),
            ("Commands", len(self.steps)),
            ("Applied", applied),
            ("Rejected", len(self.steps) - applied),
            ("Events", events),
            ("Accounts", len(s.accounts)),
            ("Conservation", "holds"),  # audited after every command: a break raises instead
        ]
        lines = _tables.banner("Engine run", pairs, 72)
        lines += [f"rejected at {step}: {r.code}: {r.message}" for step, r in self.rejections]
        return "\n".join([*lines, "", self.margin().summary()])

    def _repr_html_(self) -> str:
        commands = _tables.html_table(COMMAND_COLUMNS, self._command_rows(), f"Engine run ({self.profile.name})")
        return commands + self.margin()._repr_html_()

    def __repr__(self) -> str:
        return (
            f"RunReport(profile={self.profile.name!r}, commands={len(self.steps)}, "
            f"rejected={len(self.rejections)}, accounts={len(self.engine.state.accounts)})"
        )


def _cell(value: Any) -> Any:
    """Nested event fields (a market, a list) as JSON text, so each column holds scalars."""
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else value


def _commands(commands: Any, profile: Profile) -> list[tuple[int, dict[str, Any], Any]]:
    """(step, command as given, parsed Command) for every command, all parsed before any runs."""
    if isinstance(commands, str | Path):
        return load_commands(Path(commands), profile)
    if isinstance(commands, Mapping) or not isinstance(commands, Iterable):
        raise InputError("commands", "expected a path to a JSON Lines file or a list of commands (dicts)")
    out = []
    for i, raw in enumerate(commands):
        obj = parse_json(raw, f"commands[{i}]", "a JSON object") if isinstance(raw, str) else raw
        try:
            out.append((i, obj, parse_command(obj, profile)))
        except InputError as exc:
            raise InputError(f"commands[{i}].{exc.field}", exc.message) from None
    return out


def run_engine(commands: Any, profile: str | Path | Profile | None = None, engine: Engine | None = None) -> RunReport:
    """Apply commands (a JSON Lines path, or a list of dicts or JSON strings) to a new engine under
    `profile` (default `deribit`), or to `engine` to continue one. Bad input raises InputError
    before anything runs; a refused command is a Rejection in the report, not an error."""
    if engine is not None and profile is not None and resolve_profile(profile).name != engine.state.profile.name:
        raise InputError("profile", f"the engine runs under its own profile ({engine.state.profile.name})")
    engine = engine if engine is not None else Engine(resolve_profile(profile))
    report = RunReport(engine)
    for step, raw, command in _commands(commands, engine.state.profile):
        outcome = engine.apply(command)
        audit(engine.state)  # conservation after every command; a break is a bug and raises
        report.steps.append((step, raw, outcome))
    return report


def load_journal(db: str | Path) -> Engine:
    """The engine of a journal (an SQLite path or a SQLAlchemy URL) after its last command, its hash
    chain checked; read-only use: the journal is closed again and nothing is written."""
    from margin_engine.storage.journal import Journal, database_url

    with Journal.open(database_url(str(db))) as journal:
        return journal.load()
