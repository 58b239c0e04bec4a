"""The store's foundation: opening a backend, transactions and the shared quota helpers.

``Store.open`` picks the backend: a ``postgresql://`` URL (or settings with
``DATABASE_URL``) opens PostgreSQL, anything else is the SQLite file's path. Quota checks
and the job insert share one transaction under the guild's lock, so concurrent
reservations never overspend a budget, on either backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from bot.quota import QuotaSettings, usage_window
from bot.store import steps
from bot.store.backend import Backend, Row, Tx
from bot.store.models import UNFINISHED, Job
from bot.store.steps import Steps

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store.batch import BatchRunner, ReservationBatch, SQLiteBatchRunner

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class GuildQuota(NamedTuple):
    """The guild's stored quota, read inside the reservation's own transaction; until a
    moderator sets one, ``default_seconds`` per day."""

    default_seconds: int


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _job(row: Mapping[str, Any]) -> Job:
    data = dict(row)
    try:
        context = json.loads(data["context"] or "{}")
    except ValueError:
        context = {}
    data["context"] = context if isinstance(context, dict) else {}
    return Job.model_validate(data)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _quota(row: Row | None, default_seconds: int) -> QuotaSettings:
    if row is None:
        return QuotaSettings(seconds=default_seconds, period="day")
    return QuotaSettings(seconds=row["seconds"], period=row["period"],
                         member_seconds=row["member_seconds"], concurrent=row["concurrent"],
                         spend_micros=row["spend_micros"],
                         member_spend_micros=row["member_spend_micros"])


class StoreBase:
    """The backend and what every part of the store shares."""

    def __init__(self, backend: Backend, path: Path | None = None) -> None:
        self.backend = backend
        self.path = path  # the SQLite file; None on PostgreSQL
        # Reservations waiting at one moment share one transaction (bot/store/batch.py).
        self._batch: ReservationBatch | None = None
        self._sqlite_runner: SQLiteBatchRunner | None = None
        self._closed = False

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    @property
    def description(self) -> str:
        """Where the data lives (no secrets)."""
        return self.backend.description

    @classmethod
    async def open(cls, target: Settings | str | os.PathLike[str], **options: Any) -> Self:
        """Open and migrate: ``Settings`` (DATABASE_URL, else DATABASE_PATH), a
        ``postgresql://`` URL, or a SQLite file's path. Raises StoreUnavailable (one line,
        no password) when a PostgreSQL server cannot be reached or refuses the login."""
        if not isinstance(target, str | os.PathLike):
            url = target.database_url
            target = url.get_secret_value() if url is not None else target.database_path
        backend: Backend
        path: Path | None = None
        pool_runner: BatchRunner | None = None  # PostgreSQL batches run on its pool
        if isinstance(target, str) and target.startswith(POSTGRES_SCHEMES):
            # asyncpg is imported only when used (about 2 MB resident)
            from bot.store.postgres import PostgresBackend

            backend = pool_runner = await PostgresBackend.connect(target, **options)
        else:
            from bot.store.sqlite import SQLiteBackend

            path = Path(target)
            backend = await SQLiteBackend.connect(path)
        try:
            await backend.migrate()
        except BaseException:
            await backend.close()
            raise
        store = cls(backend, path)
        from bot.store.batch import ReservationBatch, SQLiteBatchRunner

        if pool_runner is not None:
            store._batch = ReservationBatch(pool_runner)
        elif path is not None:
            from bot.store.sqlite import BUSY_TIMEOUT_MS, CACHE_SIZE

            store._sqlite_runner = SQLiteBatchRunner(path, BUSY_TIMEOUT_MS, CACHE_SIZE)
            store._batch = ReservationBatch(store._sqlite_runner)
        return store

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._batch is not None:
                await self._batch.close()
            if self._sqlite_runner is not None:
                await self._sqlite_runner.close()
            await self.backend.close()

    @asynccontextmanager
    async def _tx(self, write: bool = True) -> AsyncIterator[Tx]:
        async with self.backend.transaction(write) as tx:
            yield tx

    @staticmethod
    async def _ledger(
        tx: Tx, job: Mapping[str, Any], kind: str, seconds: int, now: float,
        cost: float | None = None, note: str | None = None, money: int | None = None,
    ) -> None:
        await steps.run(tx, ledger_steps(job, kind, seconds, now, cost, note, money))

    # -- quota bookkeeping (callers hold a transaction) --

    @staticmethod
    async def _quota_in(tx: Tx, guild_id: int, default_seconds: int) -> QuotaSettings:
        return await steps.run(tx, quota_steps(guild_id, default_seconds))

    @staticmethod
    async def _window(
        tx: Tx, guild_id: int, quota: QuotaSettings, now: float
    ) -> tuple[float, float]:
        return await steps.run(tx, window_steps(guild_id, quota, now))

    @staticmethod
    async def _used(
        tx: Tx, guild_id: int, window: tuple[float, float], user_id: int | None = None,
    ) -> Used:
        return await steps.run(tx, used_steps(guild_id, window, user_id))

    @staticmethod
    async def _in_progress(tx: Tx, guild_id: int) -> int:
        return await steps.run(tx, in_progress_steps(guild_id))


# -- the steps a reservation shares with the reports (see bot/store/steps.py) --


def ledger_steps(
    job: Mapping[str, Any], kind: str, seconds: int, now: float,
    cost: float | None = None, note: str | None = None, money: int | None = None,
) -> Steps[None]:
    yield steps.execute(
        "INSERT INTO ledger (job_id, guild_id, user_id, kind, seconds, cost, created_at, note,"
        " money_micros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (job["id"], job["guild_id"], job["user_id"], kind, seconds, cost, now, note, money),
    )


def quota_steps(guild_id: int, default_seconds: int) -> Steps[QuotaSettings]:
    row = yield steps.one("SELECT * FROM guild_quota WHERE guild_id = ?", (guild_id,))
    return _quota(row, default_seconds)


def window_steps(guild_id: int, quota: QuotaSettings, now: float) -> Steps[tuple[float, float]]:
    reset_at = yield steps.scalar(
        "SELECT MAX(t) FROM (SELECT reset_at AS t FROM guild_quota WHERE guild_id = ?"
        " AND reset_at <= ? UNION ALL SELECT MAX(created_at) FROM ledger"
        " WHERE guild_id = ? AND kind = 'reset' AND created_at <= ?) AS resets",
        (guild_id, now, guild_id, now),
    )
    return usage_window(quota.period, now, reset_at)


class Used(NamedTuple):
    """What a guild (and one member) used this window: seconds and micro-dollars."""

    seconds: int
    member_seconds: int | None  # None when no member was asked about
    spent: int
    member_spent: int | None


def used_steps(
    guild_id: int, window: tuple[float, float], user_id: int | None,
) -> Steps[Used]:
    """The guild's seconds and spend used (reserved or kept), and the member's when
    ``user_id`` is given."""
    row = yield steps.one(
        "SELECT COALESCE(SUM(seconds), 0) AS guild,"
        " COALESCE(SUM(CASE WHEN user_id = ? THEN seconds ELSE 0 END), 0) AS member,"
        " COALESCE(SUM(price_micros), 0) AS spent,"
        " COALESCE(SUM(CASE WHEN user_id = ? THEN price_micros ELSE 0 END), 0) AS mspent"
        " FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ?"
        " AND charge IN ('reserved', 'committed')",
        (user_id, user_id, guild_id, *window),
    )
    assert row is not None
    mine = user_id is not None
    return Used(int(row["guild"]), int(row["member"]) if mine else None, int(row["spent"]),
                int(row["mspent"]) if mine else None)


def in_progress_steps(guild_id: int) -> Steps[int]:
    count = yield steps.scalar(
        f"SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND state IN ({_marks(4)})",
        (guild_id, *UNFINISHED),
    )
    return int(count)
