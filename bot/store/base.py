"""The database connection: transactions, migrations and small SQL helpers.


One connection in autocommit mode; every transaction runs under one ``asyncio.Lock``
(transactions on a shared connection must not interleave) and every write transaction
starts with ``BEGIN IMMEDIATE``, so a second process on the same file waits for the
write lock (``busy_timeout``) instead of racing. Quota checks and the job insert share
one transaction, so concurrent reservations never overspend a budget.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Self

import aiosqlite

from bot.quota import (
    QuotaSettings,
    usage_window,
)
from bot.store.models import UNFINISHED, Job

log = logging.getLogger(__name__)

# A write lock held by another process (a backup, a second bot) is waited out this long.
BUSY_TIMEOUT_MS = 30_000
_MIGRATION_NAME = re.compile(r"(\d+)_[\w.-]+\.sql")


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    try:
        context = json.loads(data["context"] or "{}")
    except ValueError:
        context = {}
    data["context"] = context if isinstance(context, dict) else {}
    return Job.model_validate(data)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (semicolons in strings/triggers kept)."""
    statements: list[str] = []
    buf = ""
    parts = script.split(";")
    for part in parts[:-1]:
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                statements.append(buf.strip())
            buf = ""
    tail = re.sub(r"--[^\n]*", "", buf + parts[-1]).strip()
    if tail:
        raise ValueError(f"incomplete SQL statement at the end of a migration: {tail[:60]!r}")
    return statements


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every ``bot/migrations/NNNN_name.sql``, in order."""
    found: dict[int, tuple[int, str, str]] = {}
    for entry in (resources.files("bot") / "migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if not match:
            continue
        number = int(match[1])
        if number in found:
            raise RuntimeError(
                f"two migrations numbered {number}: {found[number][1]}, {entry.name}"
            )
        found[number] = (number, entry.name, entry.read_text(encoding="utf-8"))
    return [found[n] for n in sorted(found)]


class StoreBase:
    """The connection and what every part of the store shares."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> Self:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, path)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._db.close()

    @asynccontextmanager
    async def _tx(self, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                # Inside the try: a caller cancelled while BEGIN is queued must still roll
                # back, since aiosqlite runs the queued BEGIN anyway (then the ROLLBACK).
                await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield self._db
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()

    async def _migrate(self) -> None:
        for number, name, sql in migrations():
            async with self._tx() as db:
                version = await self._scalar(db, "PRAGMA user_version")
                if version >= number:
                    continue
                for statement in split_sql(sql):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number:d}")
            log.info("applied database migration %s", name)

    @staticmethod
    async def _rows(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return list(await db.execute_fetchall(sql, args))

    @staticmethod
    async def _one(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
        async with db.execute(sql, args) as cursor:
            return await cursor.fetchone()

    @classmethod
    async def _scalar(cls, db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
        row = await cls._one(db, sql, args)
        return None if row is None else row[0]

    @staticmethod
    async def _write(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> int:
        async with db.execute(sql, args) as cursor:
            return cursor.rowcount

    @staticmethod
    async def _ledger(
        db: aiosqlite.Connection, job: Any, kind: str, seconds: int, now: float,
        cost: float | None = None, note: str | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO ledger (job_id, guild_id, user_id, kind, seconds, cost, created_at, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job["id"], job["guild_id"], job["user_id"], kind, seconds, cost, now, note),
        )

    # -- quota bookkeeping (callers hold a transaction) --

    async def _window(
        self, db: aiosqlite.Connection, guild_id: int, quota: QuotaSettings, now: float
    ) -> tuple[float, float]:
        reset_at = await self._scalar(
            db,
            "SELECT MAX(t) FROM (SELECT reset_at AS t FROM guild_quota WHERE guild_id = ?"
            " AND reset_at <= ? UNION ALL SELECT MAX(created_at) FROM ledger"
            " WHERE guild_id = ? AND kind = 'reset' AND created_at <= ?)",
            (guild_id, now, guild_id, now),
        )
        return usage_window(quota.period, now, reset_at)

    async def _used(
        self, db: aiosqlite.Connection, guild_id: int, window: tuple[float, float],
        user_id: int | None = None,
    ) -> int:
        sql = (
            "SELECT COALESCE(SUM(seconds), 0) FROM jobs WHERE guild_id = ? AND created_at >= ?"
            " AND created_at < ? AND charge IN ('reserved', 'committed')"
        )
        args: list[Any] = [guild_id, *window]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        return int(await self._scalar(db, sql, args))

    async def _in_progress(self, db: aiosqlite.Connection, guild_id: int) -> int:
        return int(await self._scalar(
            db, f"SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND state IN ({_marks(4)})",
            (guild_id, *UNFINISHED),
        ))
