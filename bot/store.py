"""The database: the one module that owns SQL (aiosqlite, numbered migrations).

One connection in autocommit mode; every transaction runs under one ``asyncio.Lock``
(transactions on a shared connection must not interleave) and every write transaction
starts with ``BEGIN IMMEDIATE``, so a second process on the same file waits for the
write lock (``busy_timeout``) instead of racing. Quota checks and the job insert share
one transaction, so concurrent reservations never overspend a budget.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel, Field, field_validator

from bot.quota import (
    MemberUsage,
    QuotaExceeded,
    QuotaSettings,
    Usage,
    UsageReport,
    check_reservation,
    job_cost,
    remaining,
    usage_window,
)

__all__ = [
    "Charge", "Job", "JobState", "LedgerRow", "MemberUsage", "NewJob", "QuotaExceeded",
    "QuotaSettings", "Store", "Usage", "UsageReport",
]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
_MIGRATION_NAME = re.compile(r"(\d+)_[\w.-]+\.sql")


class JobState(StrEnum):
    REQUESTED = "requested"
    RESERVED = "reserved"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Charge(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    REFUNDED = "refunded"
    NONE = "none"


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED})
UNFINISHED = (JobState.RESERVED, JobState.SUBMITTING, JobState.SUBMITTED, JobState.SUCCEEDED)
# fail_job/cancel_job also accept 'requested', so no job can be stranded in it.
_ENDABLE = (JobState.REQUESTED, *UNFINISHED)
_CHARGED = ("reserved", "committed")


def _path_str(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class NewJob(BaseModel):
    """What ``reserve`` needs to record a job."""

    guild_id: int | None
    channel_id: int | None = None
    user_id: int | None = None
    provider: str
    model: str
    mode: str
    prompt: str
    duration: int
    orientation: str
    image_path: str | None = None
    seconds: int = Field(ge=0)
    price_per_second: float | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    _path = field_validator("image_path", mode="before")(_path_str)


class Job(BaseModel):
    """One row of ``jobs``; ``context`` is the Discord layer's opaque JSON, parsed."""

    id: str
    token_hash: str = Field(repr=False)
    guild_id: int | None
    channel_id: int | None
    user_id: int | None
    # Nullable columns that ``reserve`` always fills, hence typed as present.
    provider: str
    model: str
    mode: str
    prompt: str
    duration: int
    orientation: str
    image_path: str | None
    state: JobState
    charge: Charge
    seconds: int
    price_per_second: float | None
    task_id: str | None
    task_hint: str | None
    video_url: str | None
    video_path: str | None
    error_code: str | None
    error_message: str | None
    context: dict[str, Any]
    message_id: int | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def cost(self) -> float | None:
        return job_cost(self.seconds, self.price_per_second)


class LedgerRow(BaseModel):
    id: int
    job_id: str | None
    guild_id: int | None
    user_id: int | None
    kind: Literal["reserve", "commit", "refund", "reset"]
    seconds: int
    cost: float | None
    created_at: float
    note: str | None


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


class Store:
    """All persistence: jobs, quotas, the quota ledger and a key/value table."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> Store:
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

    # -- jobs --

    async def reserve(
        self, new: NewJob, quota: QuotaSettings, now: float | None = None, *,
        job_id: str | None = None, token: str | None = None,
    ) -> tuple[Job, str]:
        """Check the limits and record the job with its seconds reserved, atomically.

        Returns the job and its callback token (returned only here; only its sha256 is
        kept). Raises QuotaExceeded, having written nothing, when a limit refuses.
        ``job_id`` and ``token`` let the caller choose them (e.g. a token it can derive
        again after a restart); by default a uuid4 hex and 192 random bits.
        """
        now = _now(now)
        token = secrets.token_urlsafe(24) if token is None else token
        job_id = uuid.uuid4().hex if job_id is None else job_id
        async with self._tx() as db:
            if new.guild_id is not None:
                window = await self._window(db, new.guild_id, quota, now)
                member_used = None
                if quota.member_seconds is not None and new.user_id is not None:
                    member_used = await self._used(db, new.guild_id, window, new.user_id)
                refusal = check_reservation(
                    quota, new.seconds,
                    guild_used=await self._used(db, new.guild_id, window),
                    member_used=member_used,
                    in_progress=await self._in_progress(db, new.guild_id)
                    if quota.concurrent is not None else 0,
                    resets_at=window[1],
                )
                if refusal is not None:
                    raise refusal
            await db.execute(
                "INSERT INTO jobs (id, token_hash, guild_id, channel_id, user_id, provider, model,"
                " mode, prompt, duration, orientation, image_path, state, charge, seconds,"
                " price_per_second, context, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', 'reserved',"
                " ?, ?, ?, ?, ?)",
                (job_id, _token_hash(token), new.guild_id, new.channel_id, new.user_id,
                 str(new.provider), str(new.model), str(new.mode), new.prompt, new.duration,
                 str(new.orientation), new.image_path, new.seconds, new.price_per_second,
                 json.dumps(new.context), now, now),
            )
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            await self._ledger(db, row, "reserve", new.seconds, now)
        return _job(row), token

    async def job(self, job_id: str) -> Job | None:
        async with self._tx(write=False) as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def job_by_token(self, token: str) -> Job | None:
        if not token or len(token) > 256:
            return None
        digest = _token_hash(token)
        async with self._tx(write=False) as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE token_hash = ?", (digest,))
        if row is None or not hmac.compare_digest(str(row["token_hash"]), digest):
            return None
        return _job(row)

    async def _set(
        self, job_id: str, sets: dict[str, Any], from_states: Iterable[JobState] | None = None,
        now: float | None = None,
    ) -> bool:
        sets = {**sets, "updated_at": _now(now)}
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?"
        args = [*sets.values(), job_id]
        if from_states is not None:
            states = tuple(from_states)
            sql += f" AND state IN ({_marks(len(states))})"
            args += states
        async with self._tx() as db:
            return await self._write(db, sql, args) == 1

    async def mark_submitting(self, job_id: str) -> bool:
        return await self._set(job_id, {"state": JobState.SUBMITTING}, [JobState.RESERVED])

    async def mark_submitted(self, job_id: str, task_id: str) -> bool:
        """submitting -> submitted; True again (changing nothing) for the same task id."""
        now = time.time()
        async with self._tx() as db:
            row = await self._one(db, "SELECT state, task_id FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            if row["state"] == JobState.SUBMITTED:
                return bool(row["task_id"] == task_id)
            return await self._write(
                db, "UPDATE jobs SET state = 'submitted', task_id = ?, submitted_at = ?,"
                " updated_at = ? WHERE id = ? AND state = 'submitting'",
                (task_id, now, now, job_id),
            ) == 1

    async def mark_succeeded(self, job_id: str, video_url: str) -> bool:
        return await self._set(
            job_id, {"state": JobState.SUCCEEDED, "video_url": video_url}, [JobState.SUBMITTED]
        )

    async def mark_delivered(self, job_id: str, message_id: int | None) -> bool:
        """succeeded -> delivered; the reserved seconds become committed, with the cost."""
        return await self._end(job_id, JobState.DELIVERED, (JobState.SUCCEEDED,), refund=False,
                               message_id=message_id)

    async def fail_job(self, job_id: str, code: str, message: str) -> bool:
        """Any unfinished state -> failed and the seconds refunded, exactly once."""
        return await self._end(job_id, JobState.FAILED, _ENDABLE, refund=True,
                               code=code, message=message)

    async def cancel_job(self, job_id: str, reason: str, refund: bool) -> bool:
        """Unfinished -> cancelled. Without a refund the seconds are committed (spent)."""
        return await self._end(job_id, JobState.CANCELLED, _ENDABLE, refund=refund,
                               code="cancelled", message=reason)

    async def _end(
        self, job_id: str, state: JobState, from_states: Sequence[JobState], *, refund: bool,
        code: str | None = None, message: str | None = None, message_id: int | None = None,
    ) -> bool:
        now = time.time()
        async with self._tx() as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None or row["state"] not in from_states:
                return False
            charge = row["charge"]
            if charge == Charge.RESERVED:
                charge = Charge.REFUNDED if refund else Charge.COMMITTED
            sets: dict[str, Any] = {"state": state, "charge": charge, "finished_at": now,
                                    "updated_at": now}
            if code is not None:
                sets |= {"error_code": code, "error_message": message}
            if message_id is not None:
                sets["message_id"] = message_id
            await db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                (*sets.values(), job_id),
            )
            if charge == Charge.REFUNDED and row["charge"] == Charge.RESERVED:
                await self._ledger(db, row, "refund", -row["seconds"], now, note=code)
            elif charge == Charge.COMMITTED and row["charge"] == Charge.RESERVED:
                cost = job_cost(row["seconds"], row["price_per_second"])
                await self._ledger(db, row, "commit", 0, now, cost=cost, note=code)
        return True

    async def set_task_hint(self, job_id: str, task_id: str) -> bool:
        return await self._set(job_id, {"task_hint": task_id})

    async def set_video_path(self, job_id: str, path: str | os.PathLike[str]) -> bool:
        return await self._set(job_id, {"video_path": os.fspath(path)})

    async def set_error(self, job_id: str, code: str, message: str) -> bool:
        return await self._set(job_id, {"error_code": code, "error_message": message})

    async def update_context(self, job_id: str, patch: dict[str, Any]) -> bool:
        """Merge ``patch`` into the job's context (top-level keys replaced)."""
        async with self._tx() as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            context = {**_job(row).context, **patch}
            await db.execute(
                "UPDATE jobs SET context = ?, updated_at = ? WHERE id = ?",
                (json.dumps(context), time.time(), job_id),
            )
        return True

    async def unfinished_jobs(self) -> list[Job]:
        """Jobs to resume after a restart, oldest first."""
        async with self._tx(write=False) as db:
            rows = await self._rows(
                db, f"SELECT * FROM jobs WHERE state IN ({_marks(4)})"
                " ORDER BY created_at, rowid", UNFINISHED,
            )
        return [_job(r) for r in rows]

    async def jobs_for(
        self, guild_id: int | None, user_id: int | None, limit: int = 10
    ) -> list[Job]:
        """A guild's (or one member's) latest jobs, newest first."""
        sql, args = "SELECT * FROM jobs WHERE guild_id IS ?", [guild_id]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        async with self._tx(write=False) as db:
            rows = await self._rows(db, sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                    [*args, limit])
        return [_job(r) for r in rows]

    async def count_unfinished(self, provider: str | None = None) -> int:
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ({_marks(4)})"
        args: list[str] = [*UNFINISHED]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        async with self._tx(write=False) as db:
            return int(await self._scalar(db, sql, args))

    # -- quotas --

    async def get_quota(self, guild_id: int, default_seconds: int) -> QuotaSettings:
        async with self._tx(write=False) as db:
            row = await self._one(db, "SELECT * FROM guild_quota WHERE guild_id = ?", (guild_id,))
        if row is None:
            return QuotaSettings(seconds=default_seconds, period="day")
        return QuotaSettings(seconds=row["seconds"], period=row["period"],
                             member_seconds=row["member_seconds"], concurrent=row["concurrent"])

    async def has_quota(self, guild_id: int) -> bool:
        """Whether a moderator has set this guild's quota (else the default applies)."""
        async with self._tx(write=False) as db:
            row = await self._one(
                db, "SELECT 1 AS x FROM guild_quota WHERE guild_id = ?", (guild_id,)
            )
        return row is not None

    async def set_quota(
        self, guild_id: int, settings: QuotaSettings, by_user: int | None, now: float | None = None
    ) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO guild_quota (guild_id, seconds, period, member_seconds, concurrent,"
                " updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO"
                " UPDATE SET seconds = excluded.seconds, period = excluded.period, member_seconds"
                " = excluded.member_seconds, concurrent = excluded.concurrent, updated_at ="
                " excluded.updated_at, updated_by = excluded.updated_by",
                (guild_id, settings.seconds, settings.period, settings.member_seconds,
                 settings.concurrent, _now(now), by_user),
            )

    async def reset_usage(
        self, guild_id: int, by_user: int | None, now: float | None = None
    ) -> None:
        """Start the guild's counting window afresh now (a 'reset' ledger row, 0 s)."""
        now = _now(now)
        async with self._tx() as db:
            await db.execute(
                "UPDATE guild_quota SET reset_at = ?, updated_at = ?, updated_by = ?"
                " WHERE guild_id = ?", (now, now, by_user, guild_id),
            )
            await self._ledger(db, {"id": None, "guild_id": guild_id, "user_id": by_user},
                               "reset", 0, now, note=f"reset by {by_user}")

    async def usage(
        self, guild_id: int, user_id: int | None, quota: QuotaSettings, now: float | None = None
    ) -> Usage:
        now = _now(now)
        async with self._tx(write=False) as db:
            window = await self._window(db, guild_id, quota, now)
            used = await self._used(db, guild_id, window)
            member = None if user_id is None else await self._used(db, guild_id, window, user_id)
            running = await self._in_progress(db, guild_id)
        cap = quota.member_seconds if member is not None else None
        return Usage(
            period=quota.period, window_start=window[0], resets_at=window[1],
            guild_used=used, guild_limit=quota.seconds,
            guild_remaining=remaining(quota.seconds, used),
            member_used=member, member_limit=cap,
            member_remaining=None if cap is None or member is None else remaining(cap, member),
            in_progress=running,
        )

    async def usage_report(
        self, guild_id: int, quota: QuotaSettings, now: float | None = None, top_n: int = 5
    ) -> UsageReport:
        now = _now(now)
        async with self._tx(write=False) as db:
            window = await self._window(db, guild_id, quota, now)
            rows = await self._rows(
                db,
                "SELECT user_id, COUNT(*) AS jobs,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed') THEN seconds ELSE 0 END) AS s,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed')"
                " THEN seconds * price_per_second END) AS cost,"
                " SUM(state = 'delivered') AS delivered, SUM(state = 'failed') AS failed"
                " FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ?"
                " GROUP BY user_id",
                (guild_id, *window),
            )

        def cost(value: float | None, seconds: int) -> float | None:
            if value is None:
                return 0.0 if seconds == 0 else None
            return round(value, 4)

        members = [MemberUsage(user_id=r["user_id"], seconds=r["s"], cost=cost(r["cost"], r["s"]),
                               jobs=r["jobs"]) for r in rows if r["user_id"] is not None]
        members.sort(key=lambda m: (-m.seconds, -(m.cost or 0.0), -m.jobs, m.user_id))
        total_seconds = sum(int(r["s"]) for r in rows)
        known = [float(r["cost"]) for r in rows if r["cost"] is not None]
        return UsageReport(
            window_start=window[0], total_seconds=total_seconds,
            total_cost=round(sum(known), 4) if known or total_seconds == 0 else None,
            jobs=sum(int(r["jobs"]) for r in rows),
            delivered=sum(int(r["delivered"]) for r in rows),
            failed=sum(int(r["failed"]) for r in rows),
            top=members[:top_n],
        )

    # -- ledger, meta, health --

    async def ledger_balance(self, job_id: str) -> int:
        async with self._tx(write=False) as db:
            return int(await self._scalar(
                db, "SELECT COALESCE(SUM(seconds), 0) FROM ledger WHERE job_id = ?", (job_id,)
            ))

    async def ledger_rows(self, job_id: str | None = None) -> list[LedgerRow]:
        """A job's ledger rows (all rows when ``job_id`` is None), oldest first."""
        sql, args = "SELECT * FROM ledger", []
        if job_id is not None:
            sql, args = sql + " WHERE job_id = ?", [job_id]
        async with self._tx(write=False) as db:
            rows = await self._rows(db, sql + " ORDER BY id", args)
        return [LedgerRow.model_validate(dict(r)) for r in rows]

    async def get_meta(self, key: str) -> str | None:
        async with self._tx(write=False) as db:
            value = await self._scalar(db, "SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def meta_setdefault(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first if there is none (atomic)."""
        async with self._tx() as db:
            await db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return str(await self._scalar(db, "SELECT value FROM meta WHERE key = ?", (key,)))

    async def set_meta(self, key: str, value: str) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value),
            )

    async def ping(self) -> bool:
        try:
            async with self._tx(write=False) as db:
                return bool(await self._scalar(db, "SELECT 1") == 1)
        except Exception:
            log.warning("database ping failed", exc_info=True)
            return False

