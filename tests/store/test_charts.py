"""Store aggregates for the /usage picture and the metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from bot.store import NewJob, QuotaSettings, Store
from bot.store.charts import DayUsage

QUOTA = QuotaSettings(seconds=10_000, period="month")


def _new(user: int, seconds: int, guild: int = 1) -> NewJob:
    return NewJob(guild_id=guild, user_id=user, provider="sandbox", model="sora-2",
                  mode="text-to-video", prompt="p", duration=seconds, orientation="landscape",
                  seconds=seconds)


def _at(day: int, hour: int, minute: int = 0, second: float = 0) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC).timestamp() + second


async def test_daily_usage_counts_charged_seconds_per_utc_day(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        made = []
        for n, (user, seconds, when) in enumerate([
            (7, 4, _at(24, 0, 0, 0.2)), (7, 8, _at(24, 23, 59, 59.9)), (8, 12, _at(24, 12)),
            (7, 4, _at(25, 0, 0, 0.1)), (8, 8, _at(26, 9)), (7, 4, _at(27, 9)),
        ]):
            job, _ = await store.reserve(_new(user, seconds), QUOTA, job_id=f"j{n}",
                                         token=f"t{n}", now=when)
            made.append(job)
        await store.reserve(_new(7, 4, guild=2), QUOTA, job_id="other", token="to",
                            now=_at(24, 10))
        await store.fail_job(made[4].id, "x", "refunded")  # refunded seconds do not count
        rows = await store.daily_usage(1, _at(24, 0), _at(27, 0))
        assert rows == [
            DayUsage(date(2026, 11, 24), 7, 12), DayUsage(date(2026, 11, 24), 8, 12),
            DayUsage(date(2026, 11, 25), 7, 4),
        ]
        counts = await store.job_counts_by_state()
        assert counts == {"reserved": 6}
        await store.mark_submitting(made[0].id)
        assert await store.job_counts_by_state() == {"reserved": 5, "submitting": 1}
    finally:
        await store.close()
