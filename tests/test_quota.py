"""Pure quota arithmetic: UTC period windows, resets, refusal rules, costs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.quota import (
    QuotaExceeded,
    QuotaSettings,
    check_reservation,
    job_cost,
    period_window,
    remaining,
    usage_window,
)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (ts(2024, 3, 15, 13, 45, 10), ts(2024, 3, 15), ts(2024, 3, 16)),
        (ts(2024, 3, 15), ts(2024, 3, 15), ts(2024, 3, 16)),  # exactly midnight
        (ts(2024, 3, 15, 23, 59, 59) + 0.999, ts(2024, 3, 15), ts(2024, 3, 16)),
        (ts(2024, 2, 28, 12), ts(2024, 2, 28), ts(2024, 2, 29)),  # leap year
        (ts(2024, 12, 31, 23, 0), ts(2024, 12, 31), ts(2025, 1, 1)),
    ],
)
def test_day_window(now: float, start: float, end: float) -> None:
    assert period_window("day", now) == (start, end)


@pytest.mark.parametrize(
    ("now", "monday"),
    [
        (ts(2024, 3, 13, 12), ts(2024, 3, 11)),  # Wednesday
        (ts(2024, 3, 11), ts(2024, 3, 11)),  # Monday 00:00 itself
        (ts(2024, 3, 17, 23, 59, 59), ts(2024, 3, 11)),  # Sunday night
        (ts(2024, 3, 18, 0, 0, 1), ts(2024, 3, 18)),  # next Monday
        (ts(2025, 1, 1, 9), ts(2024, 12, 30)),  # week across the new year
    ],
)
def test_week_window_starts_monday(now: float, monday: float) -> None:
    start, end = period_window("week", now)
    assert start == monday
    assert end - start == 7 * 86400
    assert datetime.fromtimestamp(start, UTC).weekday() == 0


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (ts(2024, 3, 15, 10), ts(2024, 3, 1), ts(2024, 4, 1)),
        (ts(2024, 3, 1), ts(2024, 3, 1), ts(2024, 4, 1)),  # the 1st at 00:00
        (ts(2024, 2, 29, 23, 59), ts(2024, 2, 1), ts(2024, 3, 1)),  # leap February
        (ts(2023, 2, 28, 23, 59), ts(2023, 2, 1), ts(2023, 3, 1)),
        (ts(2024, 1, 31, 12), ts(2024, 1, 1), ts(2024, 2, 1)),  # rollover from a 31-day month
        (ts(2024, 4, 30, 23, 59, 59), ts(2024, 4, 1), ts(2024, 5, 1)),
        (ts(2024, 12, 31, 23, 59, 59), ts(2024, 12, 1), ts(2025, 1, 1)),  # Dec -> Jan
        (ts(2025, 1, 1), ts(2025, 1, 1), ts(2025, 2, 1)),
    ],
)
def test_month_window(now: float, start: float, end: float) -> None:
    assert period_window("month", now) == (start, end)


def test_unknown_period_rejected() -> None:
    with pytest.raises(ValueError, match="unknown period"):
        period_window("year", 0.0)  # type: ignore[arg-type]


def test_usage_window_honours_reset_in_current_period_only() -> None:
    now = ts(2024, 3, 15, 12)
    day_start, day_end = ts(2024, 3, 15), ts(2024, 3, 16)
    assert usage_window("day", now, None) == (day_start, day_end)
    reset = ts(2024, 3, 15, 9)
    assert usage_window("day", now, reset) == (reset, day_end)
    # a reset from yesterday no longer matters
    assert usage_window("day", now, ts(2024, 3, 14, 20)) == (day_start, day_end)
    # a reset stamped in the future (clock skew) is ignored
    assert usage_window("day", now, now + 60) == (day_start, day_end)
    # a reset exactly now starts the window now
    assert usage_window("day", now, now) == (now, day_end)


def test_check_reservation_passes_within_limits() -> None:
    quota = QuotaSettings(seconds=120, member_seconds=20, concurrent=2)
    assert check_reservation(
        quota, 8, guild_used=112, member_used=12, in_progress=1, resets_at=1.0
    ) is None


def test_check_reservation_guild_first() -> None:
    quota = QuotaSettings(seconds=120, member_seconds=20, concurrent=1)
    refusal = check_reservation(
        quota, 8, guild_used=116, member_used=20, in_progress=5, resets_at=99.0
    )
    assert isinstance(refusal, QuotaExceeded)
    assert (refusal.reason, refusal.remaining, refusal.limit, refusal.resets_at) == (
        "guild", 4, 120, 99.0,
    )


def test_check_reservation_member_then_concurrent() -> None:
    quota = QuotaSettings(seconds=120, member_seconds=20, concurrent=1)
    refusal = check_reservation(quota, 8, guild_used=0, member_used=16, in_progress=5, resets_at=1)
    assert refusal is not None
    assert (refusal.reason, refusal.remaining, refusal.limit) == ("member", 4, 20)
    refusal = check_reservation(quota, 8, guild_used=0, member_used=0, in_progress=1, resets_at=1)
    assert refusal is not None
    assert (refusal.reason, refusal.remaining, refusal.limit) == ("concurrent", 0, 1)
    # no member known (command line): the member cap is skipped
    assert check_reservation(
        quota, 8, guild_used=0, member_used=None, in_progress=0, resets_at=1
    ) is None


def test_over_used_remaining_never_negative() -> None:
    assert remaining(10, 14) == 0
    refusal = check_reservation(
        QuotaSettings(seconds=10), 4, guild_used=14, member_used=None, in_progress=0, resets_at=1
    )
    assert refusal is not None and refusal.remaining == 0


def test_quota_settings_validation() -> None:
    assert QuotaSettings(seconds=60).period == "day"
    with pytest.raises(ValidationError):
        QuotaSettings(seconds=-1)
    with pytest.raises(ValidationError):
        QuotaSettings.model_validate({"seconds": 60, "period": "year"})
    with pytest.raises(ValidationError):
        QuotaSettings(seconds=60, member_seconds=-5)


def test_job_cost() -> None:
    assert job_cost(8, 0.09) == 0.72
    assert job_cost(12, None) is None
    assert job_cost(4, 0.0) == 0.0
