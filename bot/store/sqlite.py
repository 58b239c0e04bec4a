"""The SQLite backend: one aiosqlite connection to the file at ``DATABASE_PATH``.

The connection is in autocommit mode; every transaction runs under one ``asyncio.Lock``
(transactions on a shared connection must not interleave) and every write transaction
starts with ``BEGIN IMMEDIATE``, so a second process on the same file waits for the
write lock (``busy_timeout``) instead of racing. The schema version is
``PRAGMA user_version``. Reservations take a faster road on SQLite: see ``batch.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store import migrate
from bot.store.backend import (
    DatabaseUnavailable,
    Dialect,
    IdentityInUse,
    Listener,
    LockSpace,
    Row,
    plain_args,
)

log = logging.getLogger(__name__)

# A write lock held by another process (a backup, a second bot) is waited out this long.
# Pages each connection keeps in memory, as a negative number of KiB (SQLite's default is
# 2 MiB a connection). The file stays in the operating system's cache, so a smaller cache
# costs a system call per page read, not a disk read.
CACHE_SIZE = -256
BUSY_TIMEOUT_MS = 30_000
# What SQLite says when the file cannot be written for now: another process holds its
# write lock past the busy timeout, or the disk is full (or failing).
_BUSY = ("database is locked", "database table is locked", "disk i/o error",
         "unable to open database file")
_FULL = ("database or disk is full",)


def unavailable(exc: BaseException, path: Path) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable an sqlite3 error stands for, or None (a fault of the SQL)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text = str(exc).lower()
    if any(word in text for word in _FULL):
        return DatabaseUnavailable(f"the disk holding {path} is full", full=True)
    if any(word in text for word in _BUSY):
        return DatabaseUnavailable(f"SQLite file {path}: {text}")
    return None


class SQLiteTx:
    dialect: Dialect = "sqlite"
    for_update = ""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in await self.db.execute_fetchall(sql, plain_args(args))]

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        async with self.db.execute(sql, plain_args(args)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else dict(row)

    async def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        async with self.db.execute(sql, plain_args(args)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self.db.execute(sql, plain_args(args)) as cursor:
            return cursor.rowcount

    async def lock(self, space: LockSpace, key: int) -> None:
        """Nothing to do: a write transaction already holds the file's write lock."""


class SQLiteBackend:
    dialect: Dialect = "sqlite"

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self.description = f"SQLite file {path}"
        self._lock = asyncio.Lock()
        self._closed = False
        # One process owns a SQLite file: notifications stay in this process.
        self._listeners: dict[str, list[Listener]] = {}
        self._identity_file: Any = None

    @classmethod
    async def connect(cls, path: Path) -> SQLiteBackend:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA cache_size = {CACHE_SIZE:d}")
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def listen(self, channel: str, listener: Listener) -> None:
        self._listeners.setdefault(channel, []).append(listener)

    async def notify(self, channel: str, payload: str) -> None:
        for listener in list(self._listeners.get(channel, ())):
            listener(payload)

    def on_reconnect(self, callback: Any) -> None:
        """Nothing to do: a file never goes away and comes back."""

    async def hold_identity(self, name: str) -> None:
        """One bot process per SQLite file: an exclusive lock on a file beside it, which
        the operating system drops when the process dies (however it dies)."""
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise IdentityInUse(name) from None
        self._identity_file = handle

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.db.close()
            if self._identity_file is not None:
                self._identity_file.close()

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[SQLiteTx]:
        async with self._lock:
            try:
                # Inside the try: a caller cancelled while BEGIN is queued must still roll
                # back, since aiosqlite runs the queued BEGIN anyway (then the ROLLBACK).
                await self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield SQLiteTx(self.db)
                await self.db.commit()
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self.db.rollback()
                down = unavailable(exc, self.path)
                if down is not None:
                    raise down from None
                raise

    async def migrate(self) -> None:
        """Each pending migration in its own write transaction (the write lock keeps two
        processes from applying one twice)."""
        for number, name, sql in migrate.migrations("sqlite"):
            async with self.transaction() as tx:
                version = await tx.scalar("PRAGMA user_version")
                if version >= number:
                    continue
                for statement in migrate.split_sql(sql):
                    await tx.execute(statement)
                await tx.execute(f"PRAGMA user_version = {number:d}")
            log.info("applied database migration %s", name)
