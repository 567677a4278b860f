"""The service's one writer: commands queue up, are applied and journaled in batches (group
commit: one durable transaction for every command that arrived meanwhile), then answered and
broadcast. Reads run on the same event loop between batches, so they never see half a command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from margin_engine.engine import Engine
from margin_engine.errors import InputError
from margin_engine.service import metrics

LOG = logging.getLogger("margin_engine.commands")
MAX_BATCH = 256  # commands per durable transaction
EVENT_BACKLOG = 1000  # recent events kept for new dashboard subscribers


@dataclass
class _Pending:
    obj: dict
    client_id: str | None
    future: asyncio.Future


@dataclass
class Runtime:
    journal: Any  # margin_engine.storage.journal.Journal
    engine: Engine
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    recent: deque = field(default_factory=lambda: deque(maxlen=EVENT_BACKLOG))
    insurance_history: deque = field(default_factory=lambda: deque(maxlen=EVENT_BACKLOG))  # (engine time, USD)
    writer: asyncio.Task | None = None

    def start(self) -> None:
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
            try:
                await self.writer
            except asyncio.CancelledError:
                pass

    async def submit(self, obj: dict, client_id: str | None = None) -> dict:
        """Queue a JSON command; the answer comes once it is durable. Raises InputError for bad input."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(obj, client_id, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            started = time.perf_counter()
            try:
                outcomes = self.journal.submit_batch(self.engine, [(p.obj, p.client_id) for p in batch])
            except Exception as exc:  # nothing of the batch is durable: every caller hears why
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            seconds = time.perf_counter() - started
            metrics.observe_batch(len(batch), seconds)
            for pending, outcome in zip(batch, outcomes, strict=True):
                answer = _answer(outcome)
                _log(pending.obj, answer, len(batch), seconds)
                if not pending.future.done():
                    pending.future.set_result(answer)
                if answer.get("events"):
                    self._broadcast(answer["events"])
            self._record_insurance()

    def _record_insurance(self) -> None:
        usd = metrics.observe_state(self.engine)
        if not self.insurance_history or self.insurance_history[-1][1] != usd:
            self.insurance_history.append((self.engine.state.now_s or 0, usd))

    def _broadcast(self, events: list[dict]) -> None:
        for event in events:
            self.recent.append(event)
            for q in list(self.subscribers):
                if q.qsize() < EVENT_BACKLOG:
                    q.put_nowait(event)

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)


def _log(command: dict, answer: dict, batch: int, seconds: float) -> None:
    """One JSON line per command: what ops search and alert on (structured, not prose)."""
    if LOG.isEnabledFor(logging.INFO):
        LOG.info(
            json.dumps(
                {
                    "seq": answer.get("seq"),
                    "type": command.get("type") if isinstance(command, dict) else None,
                    "accepted": answer["accepted"],
                    "code": answer.get("rejection", {}).get("code"),
                    "client_id": answer.get("client_id"),
                    "batch": batch,
                    "batch_ms": round(seconds * 1000, 3),
                }
            )
        )


def _answer(receipt) -> dict:
    """A journal receipt (or the InputError of a command that did not parse) as the JSON answer."""
    if isinstance(receipt, InputError):
        return {"accepted": False, "input_error": {"field": receipt.field, "message": receipt.message}}
    return {"accepted": receipt.accepted, **receipt.to_json()}
