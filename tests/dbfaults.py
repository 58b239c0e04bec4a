"""The database going away for a moment, as its driver reports it: every statement of a
transaction fails the way it does when SQLite's write lock is held past the wait
("database is locked") or a PostgreSQL server restarts (the connection is closed), for
a window of time that starts at a chosen statement.

Reservations run in batches (their own connection on SQLite) and are left alone, so a
test can ask for jobs and have their tasks meet the outage. The window is exact in time
and place, which a real server restart is not; ``tests/faults`` also stops a real
PostgreSQL server and holds a real SQLite write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bot.store.postgres import PostgresTx
from bot.store.sqlite import SQLiteTx


class Outage:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trigger: str | None = None  # a fragment of SQL that starts the window
        self.seconds = 0.0
        self.times = 0  # or: fail only the next statements containing ``trigger``
        self.until = 0.0
        self.failed = 0  # statements failed so far
        for cls in (SQLiteTx, PostgresTx):
            for name in ("rows", "one", "scalar", "execute"):
                monkeypatch.setattr(cls, name, self._wrap(getattr(cls, name)))

    def arm(self, *, at: str, seconds: float = 0.0, times: int = 0) -> None:
        """From the first statement containing ``at``, everything fails for ``seconds``;
        or (``times``) only the next ``times`` statements containing ``at`` fail: a write
        that fails once, as with a short write lock."""
        self.trigger, self.seconds, self.times = at, seconds, times

    def start(self, seconds: float) -> None:
        self.trigger, self.until = None, time.monotonic() + seconds

    @property
    def active(self) -> bool:
        return time.monotonic() < self.until

    async def over(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while self.trigger is not None or self.active:
            assert time.monotonic() < deadline, "the outage never began or ended"
            await asyncio.sleep(0.02)

    def _wrap(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        outage = self

        async def wrapped(tx: Any, sql: str, args: Any = ()) -> Any:
            if getattr(tx, "held", None) is None:  # not a reservation batch
                if outage.trigger is not None and outage.trigger in sql and outage.times:
                    outage.times -= 1
                    if not outage.times:
                        outage.trigger = None
                    outage.failed += 1
                    raise _away(tx)
                if outage.trigger is not None and outage.trigger in sql:
                    outage.trigger = None
                    outage.until = time.monotonic() + outage.seconds
                if outage.active:
                    outage.failed += 1
                    raise _away(tx)
            return await method(tx, sql, args)

        return wrapped


def _away(tx: Any) -> Exception:
    if isinstance(tx, SQLiteTx):
        return sqlite3.OperationalError("database is locked")
    return asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
