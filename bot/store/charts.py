"""Read-only aggregates for pictures and metrics: seconds per day, jobs in flight by state.

Plain SQL that SQLite and PostgreSQL both accept; days are bucketed here (UTC calendar
days, like the quota periods) so neither backend's date functions are needed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import NamedTuple

from bot.store.base import StoreBase

_DAILY_SQL = (
    "SELECT user_id, created_at, seconds FROM jobs WHERE guild_id = ? AND created_at >= ?"
    " AND created_at < ? AND charge IN ('reserved', 'committed')"
)
_IN_FLIGHT_SQL = (
    "SELECT state, COUNT(*) AS n FROM jobs"
    " WHERE state IN ('reserved', 'submitting', 'submitted', 'succeeded') GROUP BY state"
)


class DayUsage(NamedTuple):
    """Seconds of video one member had charged on one UTC day."""

    day: date
    user_id: int | None
    seconds: int


class ChartsMixin(StoreBase):
    async def daily_usage(self, guild_id: int, start: float, end: float) -> list[DayUsage]:
        """Charged seconds per UTC day and member for jobs created in [start, end)."""
        async with self._tx(write=False) as db:
            rows = await db.rows(_DAILY_SQL, (guild_id, start, end))
        totals: dict[tuple[date, int | None], int] = {}
        for row in rows:
            day = datetime.fromtimestamp(float(row["created_at"]), UTC).date()
            key = (day, row["user_id"])
            totals[key] = totals.get(key, 0) + int(row["seconds"])
        return [DayUsage(day, user, seconds) for (day, user), seconds in sorted(
            totals.items(), key=lambda item: (item[0][0], item[0][1] or 0))]

    async def job_counts_by_state(self) -> dict[str, int]:
        """How many jobs are unfinished, by state (across every process on this database)."""
        async with self._tx(write=False) as db:
            rows = await db.rows(_IN_FLIGHT_SQL)
        return {str(row["state"]): int(row["n"]) for row in rows}
