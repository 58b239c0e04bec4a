"""Reservations grouped into one transaction: every reservation waiting at one moment
joins one transaction, and each stays all-or-nothing: a refusal comes before any write,
and a failing write rolls back only its own (a savepoint each on SQLite; on PostgreSQL a
savepoint around each reservation's writes only, see ``bot.store.postgres``).

``ReservationBatch`` owns the queue: its own task drains it, so a cancelled caller
strands no one, and a reservation whose caller was cancelled while its batch ran is
withdrawn afterwards (job and ledger rows). A ``BatchRunner`` runs one batch: on SQLite
(``SQLiteBatchRunner``) on a second connection to the file, in one worker thread, as
plain synchronous calls (one thread hop per batch, not one per statement); on
PostgreSQL (``PostgresBackend``) on one pooled connection. Batches take the guilds'
locks in ascending order, so two processes' batches never wait for each other in a
circle.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from bot.store.backend import Row, plain_args
from bot.store.steps import Query, Steps

log = logging.getLogger(__name__)

MAX_BATCH = 500
Outcome = Row | Exception


class BatchRunner(Protocol):
    async def run_batch(self, plans: list[Steps[Row]]) -> list[Outcome]:
        """Run every plan in one transaction; a plan's refusal or failing write is its
        outcome and undoes only its own writes."""
        ...

    async def withdraw(self, job_ids: list[str]) -> None:
        """Delete these reservations (their jobs and ledger rows)."""
        ...


def run_sync(conn: sqlite3.Connection, plan: Steps[Row]) -> Row:
    """Run a step generator on a plain sqlite3 connection (in its thread)."""
    try:
        query = next(plan)
        while True:
            query = plan.send(_ask(conn, query))
    except StopIteration as done:
        result: Row = done.value
        return result


def _ask(conn: sqlite3.Connection, query: Query) -> Any:
    if query.kind == "lock":  # the write transaction already holds the file's lock
        return None
    cursor = conn.execute(query.sql, plain_args(query.args))
    try:
        if query.kind == "execute":
            return cursor.rowcount
        if query.kind == "rows":
            return [dict(r) for r in cursor.fetchall()]
        row = cursor.fetchone()
        if query.kind == "one":
            return None if row is None else dict(row)
        return None if row is None else row[0]
    finally:
        cursor.close()


_Item = tuple[int, Steps[Row], "asyncio.Future[Row]"]


class ReservationBatch:
    def __init__(self, runner: BatchRunner) -> None:
        self._runner = runner
        self._queue: list[_Item] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, plan: Steps[Row], order: int) -> Row:
        """Run ``plan`` in the next batch; ``order`` (the guild id) sorts the batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Row] = loop.create_future()
        self._queue.append((order, plan, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="reservation batches")
        self._wake.set()
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, _, future in self._queue:
            future.cancel()
        self._queue.clear()

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                taken, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                batch = sorted((i for i in taken if not i[2].cancelled()), key=lambda i: i[0])
                if not batch:
                    continue
                work = asyncio.ensure_future(self._runner.run_batch([i[1] for i in batch]))
                try:
                    outcomes = await asyncio.shield(work)
                except asyncio.CancelledError:  # closing: let the batch finish, then stop
                    try:
                        self._settle(batch, await work)
                    except Exception as exc:
                        self._fail(batch, exc)
                    raise
                except Exception as exc:  # the batch as a whole failed (nothing written)
                    self._fail(batch, exc)
                    continue
                orphans = self._settle(batch, outcomes)
                if orphans:
                    try:
                        await self._runner.withdraw(orphans)
                    except Exception:
                        log.exception("could not withdraw %d reservation(s)", len(orphans))

    @staticmethod
    def _fail(batch: list[_Item], exc: Exception) -> None:
        for _, _, future in batch:
            if not future.done():
                future.set_exception(exc)

    @staticmethod
    def _settle(batch: list[_Item], outcomes: list[Outcome]) -> list[str]:
        """Hand each caller its outcome; returns the jobs whose caller has gone."""
        orphans: list[str] = []
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                if not isinstance(outcome, Exception):
                    orphans.append(str(outcome["id"]))
            elif isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        return orphans



class SQLiteBatchRunner:
    """Batches on a second connection to the SQLite file, in one worker thread."""

    def __init__(self, path: Path, busy_timeout_ms: int, cache_size: int = -2000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._cache_size = cache_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reservations")
        self._conn: sqlite3.Connection | None = None

    async def run_batch(self, plans: list[Steps[Row]]) -> list[Outcome]:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, plans)
        except sqlite3.OperationalError as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: Exception) -> Exception:
        """A locked or full file as DatabaseUnavailable; any other error as it is."""
        from bot.store.sqlite import unavailable

        return unavailable(exc, self._path) or exc

    async def withdraw(self, job_ids: list[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._delete, job_ids)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=True)

    # -- in the worker thread --

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA cache_size = {self._cache_size:d}")
            self._conn = conn
        return self._conn

    def _run(self, plans: list[Steps[Row]]) -> list[Outcome]:
        conn = self._connection()
        outcomes: list[Outcome] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for plan in plans:
                conn.execute("SAVEPOINT reservation")
                try:
                    outcomes.append(run_sync(conn, plan))
                except Exception as exc:  # a refusal or a failing statement: this one only
                    conn.execute("ROLLBACK TO reservation")
                    outcomes.append(self._translated(exc))
                conn.execute("RELEASE reservation")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _delete(self, job_ids: list[str]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for job_id in job_ids:
                conn.execute("DELETE FROM ledger WHERE job_id = ?", (job_id,))
                conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("withdrew %d reservation(s) whose callers were cancelled", len(job_ids))

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
