"""Quota arithmetic: periods, windows and the reservation rules. Pure functions, no SQL.

Quotas count seconds of generated video per guild and period (UTC calendar day, ISO
week starting Monday, or calendar month), optionally with a cap per member, a limit on
how many of the guild's jobs may run at once, and spend caps in dollars (at the
providers' list prices, counted in micro-dollars) for the guild and per member.
``bot.store`` applies these rules inside the write transaction that inserts the job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Period = Literal["day", "week", "month"]
RefusalReason = Literal["guild", "member", "concurrent", "spend", "member_spend",
                        "price_unknown"]


class QuotaSettings(BaseModel):
    """A guild's quota: ``seconds`` of video per ``period``, and optional limits."""

    model_config = ConfigDict(frozen=True)

    seconds: int = Field(ge=0)
    period: Period = "day"
    member_seconds: int | None = Field(default=None, ge=0)
    concurrent: int | None = Field(default=None, ge=0)
    # Spend caps per period in micro-dollars (None: no cap).
    spend_micros: int | None = Field(default=None, ge=0)
    member_spend_micros: int | None = Field(default=None, ge=0)

    @property
    def caps_spend(self) -> bool:
        return self.spend_micros is not None or self.member_spend_micros is not None


class Usage(BaseModel):
    """How much of the quota is used in the current window (``/quota show``, ``/usage``)."""

    period: Period
    window_start: float
    resets_at: float
    guild_used: int
    guild_limit: int
    guild_remaining: int
    # None when no member was asked about; the limit and remaining also None without a cap.
    member_used: int | None
    member_limit: int | None
    member_remaining: int | None
    in_progress: int  # the guild's unfinished jobs
    # Money at list prices (micro-dollars): spent (reserved or kept) this period.
    guild_spent: int = 0
    guild_spend_limit: int | None = None
    member_spent: int | None = None
    member_spend_limit: int | None = None

    @property
    def guild_spend_remaining(self) -> int | None:
        limit = self.guild_spend_limit
        return None if limit is None else remaining(limit, self.guild_spent)

    @property
    def member_spend_remaining(self) -> int | None:
        limit = self.member_spend_limit
        if limit is None or self.member_spent is None:
            return None
        return remaining(limit, self.member_spent)


class MemberUsage(BaseModel):
    user_id: int
    seconds: int
    cost: float | None  # US dollars; None when no counted job has a known price
    jobs: int


class ModelUsage(BaseModel):
    provider: str
    model: str
    seconds: int
    cost: float | None  # US dollars; None when no counted job has a known price
    jobs: int


class UsageReport(BaseModel):
    """The guild's totals for the current window, its top members and its models."""

    window_start: float
    total_seconds: int
    total_cost: float | None
    jobs: int
    delivered: int
    failed: int
    top: list[MemberUsage]
    models: list[ModelUsage] = Field(default_factory=list)


class QuotaExceeded(Exception):
    """A reservation was refused; nothing was written."""

    def __init__(self, reason: RefusalReason, remaining: int, limit: int, resets_at: float) -> None:
        self.reason: RefusalReason = reason
        self.remaining = remaining
        self.limit = limit
        self.resets_at = resets_at
        super().__init__(
            f"{reason} quota exceeded: {remaining} of {limit} left, resets at {resets_at:.0f}"
        )


def period_window(period: Period, now: float) -> tuple[float, float]:
    """The UTC period containing ``now`` as (start, end) epoch seconds; end is exclusive."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else (
            start.replace(month=start.month + 1)
        )
    else:  # pragma: no cover - Literal guards this for typed callers
        raise ValueError(f"unknown period {period!r}")
    return start.timestamp(), end.timestamp()


def usage_window(period: Period, now: float, reset_at: float | None) -> tuple[float, float]:
    """The counting window: from max(period start, last reset) to the period's end.

    A reset stamped after ``now`` (clock skew, or tests moving time backwards) is ignored.
    """
    start, end = period_window(period, now)
    if reset_at is not None and start < reset_at <= now:
        start = reset_at
    return start, end


def remaining(limit: int, used: int) -> int:
    return max(0, limit - used)


def check_reservation(
    quota: QuotaSettings,
    seconds: int,
    *,
    guild_used: int,
    member_used: int | None,
    in_progress: int,
    resets_at: float,
    price: int | None = None,
    guild_spent: int = 0,
    member_spent: int | None = None,
) -> QuotaExceeded | None:
    """The refusal for a reservation of ``seconds`` costing ``price`` micro-dollars, or
    None when every limit allows it.

    Checked in order: the guild's seconds, the member's (when ``member_used`` is known
    and the quota has a cap), the spend caps (a request of unknown price is refused while
    one is set), then the guild's number of unfinished jobs.
    """
    if guild_used + seconds > quota.seconds:
        left = remaining(quota.seconds, guild_used)
        return QuotaExceeded("guild", left, quota.seconds, resets_at)
    cap = quota.member_seconds
    if cap is not None and member_used is not None and member_used + seconds > cap:
        return QuotaExceeded("member", remaining(cap, member_used), cap, resets_at)
    spend = check_spend(quota, price, guild_spent=guild_spent, member_spent=member_spent,
                        resets_at=resets_at)
    if spend is not None:
        return spend
    if quota.concurrent is not None and in_progress >= quota.concurrent:
        return QuotaExceeded(
            "concurrent", remaining(quota.concurrent, in_progress), quota.concurrent, resets_at
        )
    return None


def check_spend(
    quota: QuotaSettings, price: int | None, *, guild_spent: int, member_spent: int | None,
    resets_at: float,
) -> QuotaExceeded | None:
    """The spend caps alone (also what a failover to a dearer provider must fit)."""
    if not quota.caps_spend:
        return None
    if price is None:
        return QuotaExceeded("price_unknown", 0, 0, resets_at)
    cap = quota.spend_micros
    if cap is not None and guild_spent + price > cap:
        return QuotaExceeded("spend", remaining(cap, guild_spent), cap, resets_at)
    cap = quota.member_spend_micros
    if cap is not None and member_spent is not None and member_spent + price > cap:
        return QuotaExceeded("member_spend", remaining(cap, member_spent), cap, resets_at)
    return None


def job_cost(seconds: int, price_per_second: float | None) -> float | None:
    """US dollars for ``seconds`` of video, or None when the price is unknown."""
    return None if price_per_second is None else round(seconds * price_per_second, 4)
