"""Quotas, usage reports, the ledger and the key/value table."""

from __future__ import annotations

import logging

from bot.quota import (
    MemberUsage,
    ModelUsage,
    QuotaSettings,
    Usage,
    UsageReport,
    remaining,
)
from bot.store.backend import LockSpace
from bot.store.base import StoreBase, _now
from bot.store.models import LedgerRow

log = logging.getLogger(__name__)


class QuotaMixin(StoreBase):
    # -- quotas --

    async def get_quota(self, guild_id: int, default_seconds: int) -> QuotaSettings:
        async with self._tx(write=False) as db:
            return await self._quota_in(db, guild_id, default_seconds)

    async def has_quota(self, guild_id: int) -> bool:
        """Whether a moderator has set this guild's quota (else the default applies)."""
        async with self._tx(write=False) as db:
            row = await db.one("SELECT 1 AS x FROM guild_quota WHERE guild_id = ?", (guild_id,))
        return row is not None

    async def set_quota(
        self, guild_id: int, settings: QuotaSettings, by_user: int | None, now: float | None = None
    ) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO guild_quota (guild_id, seconds, period, member_seconds, concurrent,"
                " spend_micros, member_spend_micros, updated_at, updated_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO"
                " UPDATE SET seconds = excluded.seconds, period = excluded.period, member_seconds"
                " = excluded.member_seconds, concurrent = excluded.concurrent, spend_micros ="
                " excluded.spend_micros, member_spend_micros = excluded.member_spend_micros,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (guild_id, settings.seconds, settings.period, settings.member_seconds,
                 settings.concurrent, settings.spend_micros, settings.member_spend_micros,
                 _now(now), by_user),
            )

    async def reset_usage(
        self, guild_id: int, by_user: int | None, now: float | None = None
    ) -> None:
        """Start the guild's counting window afresh now (a 'reset' ledger row, 0 s)."""
        now = _now(now)
        async with self._tx() as db:
            await db.lock(LockSpace.QUOTA, guild_id)
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
            used = await self._used(db, guild_id, window, user_id)
            running = await self._in_progress(db, guild_id)
        member = used.member_seconds
        cap = quota.member_seconds if member is not None else None
        return Usage(
            period=quota.period, window_start=window[0], resets_at=window[1],
            guild_used=used.seconds, guild_limit=quota.seconds,
            guild_remaining=remaining(quota.seconds, used.seconds),
            member_used=member, member_limit=cap,
            member_remaining=None if cap is None or member is None else remaining(cap, member),
            in_progress=running,
            guild_spent=used.spent, guild_spend_limit=quota.spend_micros,
            member_spent=used.member_spent,
            member_spend_limit=quota.member_spend_micros if user_id is not None else None,
        )

    async def usage_report(
        self, guild_id: int, quota: QuotaSettings, now: float | None = None, top_n: int = 5
    ) -> UsageReport:
        now = _now(now)
        async with self._tx(write=False) as db:
            window = await self._window(db, guild_id, quota, now)
            rows = await db.rows(
                "SELECT user_id, COUNT(*) AS jobs,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed') THEN seconds ELSE 0 END) AS s,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed')"
                " THEN price_micros END) AS cost,"
                " SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS delivered,"
                " SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed"
                " FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ?"
                " GROUP BY user_id",
                (guild_id, *window),
            )
            by_model = await db.rows(
                "SELECT provider, model, COUNT(*) AS jobs,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed') THEN seconds ELSE 0 END) AS s,"
                " SUM(CASE WHEN charge IN ('reserved', 'committed')"
                " THEN price_micros END) AS cost"
                " FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ?"
                " GROUP BY provider, model",
                (guild_id, *window),
            )

        def cost(value: int | None, seconds: int) -> float | None:
            if value is None:
                return 0.0 if seconds == 0 else None
            return round(int(value) / 1_000_000, 6)

        members = [MemberUsage(user_id=r["user_id"], seconds=r["s"], cost=cost(r["cost"], r["s"]),
                               jobs=r["jobs"]) for r in rows if r["user_id"] is not None]
        members.sort(key=lambda m: (-m.seconds, -(m.cost or 0.0), -m.jobs, m.user_id))
        total_seconds = sum(int(r["s"]) for r in rows)
        known = [int(r["cost"]) for r in rows if r["cost"] is not None]
        return UsageReport(
            window_start=window[0], total_seconds=total_seconds,
            total_cost=round(sum(known) / 1_000_000, 6) if known or total_seconds == 0
            else None,
            jobs=sum(int(r["jobs"]) for r in rows),
            delivered=sum(int(r["delivered"]) for r in rows),
            failed=sum(int(r["failed"]) for r in rows),
            top=members[:top_n],
            models=sorted(
                (ModelUsage(provider=r["provider"], model=r["model"], seconds=r["s"],
                            cost=cost(r["cost"], r["s"]), jobs=r["jobs"]) for r in by_model),
                key=lambda m: (-(m.cost or 0.0), -m.seconds, m.model)),
        )

    # -- ledger, meta, health --

    async def ledger_balance(self, job_id: str) -> int:
        async with self._tx(write=False) as db:
            return int(await db.scalar(
                "SELECT COALESCE(SUM(seconds), 0) FROM ledger WHERE job_id = ?", (job_id,)
            ))

    async def ledger_rows(self, job_id: str | None = None) -> list[LedgerRow]:
        """A job's ledger rows (all rows when ``job_id`` is None), oldest first."""
        sql, args = "SELECT * FROM ledger", [] if job_id is None else [job_id]
        if job_id is not None:
            sql += " WHERE job_id = ?"
        async with self._tx(write=False) as db:
            rows = await db.rows(sql + " ORDER BY id", args)
        return [LedgerRow.model_validate(dict(r)) for r in rows]

    async def get_meta(self, key: str) -> str | None:
        async with self._tx(write=False) as db:
            value = await db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def meta_setdefault(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first if there is none (atomic)."""
        async with self._tx() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)"
                             " ON CONFLICT (key) DO NOTHING", (key, value))
            return str(await db.scalar("SELECT value FROM meta WHERE key = ?", (key,)))

    async def set_meta(self, key: str, value: str) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value),
            )

    async def ping(self) -> bool:
        try:
            async with self._tx(write=False) as db:
                return bool(await db.scalar("SELECT 1") == 1)
        except Exception:
            log.warning("database ping failed", exc_info=True)
            return False
