"""The service's one writer: commands queue up, are applied and journaled in batches (group
commit: one durable transaction for every command that arrived meanwhile), then answered and
broadcast. Reads run on the same event loop between batches, so they never see half a command.

The writer does not die of a command: bad input, a rejection or a bug in handling one command is
that command's answer (422, 409, 500), and the others of its batch go on. Should the writer stop
anyway (a journal that cannot be read back, a bug outside any command), every waiting and later
command is answered 503 and `/health` says why, instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from margin_engine.clock import format_time
from margin_engine.engine import Engine
from margin_engine.engine.describe import event_view
from margin_engine.errors import InputError
from margin_engine.service import metrics
from margin_engine.storage.journal import CommandFailed, EngineDiverged, JournalCorrupt, JournalWriteFailed

LOG = logging.getLogger("margin_engine.commands")
MAX_BATCH = 256  # commands per durable transaction
EVENT_BACKLOG = 1000  # recent events kept for new dashboard subscribers


class WriterStopped(Exception):
    """The writer is not running: commands are refused (503) until the service is restarted."""


class CommandError(Exception):
    """One command's unexpected failure (500 for that request alone)."""


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
    stopped_reason: str | None = None

    def start(self) -> None:
        self._record_insurance()
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())
        self.writer.add_done_callback(self._writer_done)

    @property
    def alive(self) -> bool:
        return self.writer is not None and not self.writer.done()

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
            try:
                await self.writer
            except asyncio.CancelledError:
                pass
            except Exception:  # already recorded by _writer_done
                pass
        self._refuse_waiting("the service is shutting down")

    async def submit(self, obj: dict, client_id: str | None = None) -> dict:
        """Queue a JSON command; the answer comes once it is durable. Raises WriterStopped when the
        writer is not running, CommandError for a bug in handling this command."""
        if not self.alive:
            raise WriterStopped(self.stopped_reason or "the command writer is not running")
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(obj, client_id, future))
        return await future

    def _writer_done(self, task: asyncio.Task) -> None:
        """The watchdog: whatever stopped the writer, nobody waits for it any longer."""
        if task.cancelled():
            self.stopped_reason = self.stopped_reason or "the service is shutting down"
        else:
            exc = task.exception()
            self.stopped_reason = f"the command writer stopped: {type(exc).__name__}: {exc}"[:300]
            LOG.critical(json.dumps({"writer_stopped": self.stopped_reason}))
        self._refuse_waiting(self.stopped_reason)

    def _refuse_waiting(self, reason: str) -> None:
        while not self.queue.empty():
            pending = self.queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(WriterStopped(reason))

    async def _write_loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                self._run(batch)
            except EngineDiverged as exc:  # committed, but not applied: reload, the callers retry
                LOG.error(json.dumps({"engine_diverged": str(exc)[:300]}))
                self._fail(
                    batch, CommandError("the command may have been applied: retry with the same Idempotency-Key")
                )
                self.engine = self.journal.load()  # JournalCorrupt here stops the writer: nothing to serve
            except JournalCorrupt as exc:  # the journal cannot be trusted: stop taking commands
                self._fail(batch, WriterStopped(f"the journal is broken: {exc}"[:300]))
                raise
            except Exception as exc:  # a bug outside every command: answer this batch and go on
                LOG.exception("batch failed outside any command")
                self._fail(batch, CommandError(f"{type(exc).__name__}: {exc}"[:300]))
            await asyncio.sleep(0)  # let reads and new submissions in between batches

    @staticmethod
    def _fail(batch: list[_Pending], exc: Exception) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(exc)

    def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            outcomes = self.journal.submit_batch(self.engine, [(p.obj, p.client_id) for p in batch])
        except JournalWriteFailed as exc:  # nothing of the batch is durable: every caller hears why
            self._fail(batch, exc)
            return
        except JournalCorrupt:
            raise
        except Exception:
            if len(batch) == 1:
                raise
            for pending in batch:  # one by one, so that the cause fails alone
                self._run([pending])
            return
        seconds = time.perf_counter() - started
        metrics.observe_batch(len(batch), seconds)
        for pending, outcome in zip(batch, outcomes, strict=True):
            try:
                answer = _answer(outcome, self.engine.state.profile)
            except Exception as exc:  # formatting one answer failed: that request alone
                LOG.exception("cannot format the answer of %r", pending.obj)
                answer = {"accepted": False, "internal_error": f"{type(exc).__name__}: {exc}"[:300]}
            _log(pending.obj, answer, len(batch), seconds)
            if not pending.future.done():
                pending.future.set_result(answer)
            if answer.get("events"):
                self._broadcast(answer["events"])
        self._record_insurance()

    def _record_insurance(self) -> None:
        """The fund over engine time: nothing is plotted before the clock is set (capital paid before
        then shows at the first engine time), one point per change."""
        usd = metrics.observe_state(self.engine)
        now_s = self.engine.state.now_s
        if now_s is not None and (not self.insurance_history or self.insurance_history[-1][1] != usd):
            self.insurance_history.append((now_s, usd))

    def _broadcast(self, events: list[dict]) -> None:
        now_s = self.engine.state.now_s
        at = None if now_s is None else format_time(now_s)
        for event in events:
            self.recent.append({**event, "engine_time": at})
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
    failed = "internal_error" in answer
    if LOG.isEnabledFor(logging.ERROR if failed else logging.INFO):
        line = {
            "seq": answer.get("seq"),
            "type": command.get("type") if isinstance(command, dict) else None,
            "accepted": answer["accepted"],
            "code": "internal_error" if failed else answer.get("rejection", {}).get("code"),
            "client_id": answer.get("client_id"),
            "batch": batch,
            "batch_ms": round(seconds * 1000, 3),
        }
        if failed:
            line["error"] = answer["internal_error"]
            line["command"] = command
        LOG.log(logging.ERROR if failed else logging.INFO, json.dumps(line, default=str)[:4000])


def _answer(receipt, profile) -> dict:
    """A journal receipt (or the InputError of a command that did not parse, or the CommandFailed of
    one that raised) as the JSON answer; events as readers see them (describe.event_view)."""
    if isinstance(receipt, CommandFailed):
        return {"accepted": False, "internal_error": str(receipt)[:300]}
    if isinstance(receipt, InputError):
        return {"accepted": False, "input_error": {"field": receipt.field, "message": receipt.message}}
    return {"accepted": receipt.accepted, **receipt.to_json(lambda event: event_view(event, profile))}
