"""The /usage picture: days shown, series, axis and a PNG that decodes."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

from PIL import Image

from bot.media.chart import (
    HEIGHT,
    OTHERS,
    PALETTE,
    WIDTH,
    UsageChart,
    chart_days,
    day_bounds,
    draw,
    member_series,
    nice_ceiling,
    viewer_series,
)
from bot.store.charts import DayUsage

THU = datetime(2026, 11, 26, 15, 0, tzinfo=UTC).timestamp()  # a Thursday


def test_days_follow_the_period() -> None:
    week = chart_days("week", THU)
    assert (week[0], week[-1], len(week)) == (date(2026, 11, 23), date(2026, 11, 29), 7)
    month = chart_days("month", THU)
    assert (month[0], month[-1]) == (date(2026, 11, 1), date(2026, 11, 30))
    days = chart_days("day", THU)  # a daily quota shows the last 7 days
    assert (days[0], days[-1]) == (date(2026, 11, 20), date(2026, 11, 26))
    start, end = day_bounds(week)
    assert end - start == 7 * 86400
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 23, tzinfo=UTC)


def test_member_series_ranks_the_top_and_lumps_the_rest() -> None:
    days = chart_days("week", THU)
    rows = [DayUsage(days[0], user, seconds)
            for user, seconds in ((1, 4), (2, 40), (3, 8), (4, 12), (5, 16), (6, 20), (7, 4))]
    rows.append(DayUsage(days[2], 1, 6))
    series = member_series(rows, days)
    assert [(s.label, s.user_id) for s in series] == [
        ("#1", 2), ("#2", 6), ("#3", 5), ("#4", 4), ("#5", 1), ("others", None)]
    assert series[4].values[:3] == [4, 0, 6]
    assert series[-1].values[0] == 12 and series[-1].colour == OTHERS[1]
    mine = viewer_series(rows, days, 3)
    assert [sum(s.values) for s in mine] == [8, 102]


def test_axis_maximum_is_round() -> None:
    assert [nice_ceiling(v) for v in (0, 7, 11, 51, 126, 1900)] == [8, 8, 12, 60, 160, 2000]


def test_chart_is_a_png_of_the_expected_size_with_each_series_drawn() -> None:
    days = chart_days("day", THU)
    rows = [DayUsage(days[-1], 1, 60), DayUsage(days[-2], 2, 30)]
    chart = UsageChart("Seconds of video per day", days, member_series(rows, days), days[-1],
                       daily_limit=120)
    image = Image.open(io.BytesIO(draw(chart)))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
    assert PALETTE[0][1] in colours and PALETTE[1][1] in colours
    empty = Image.open(io.BytesIO(draw(UsageChart("x", days, [], days[-1]))))
    assert empty.size == (WIDTH, HEIGHT)


async def test_the_readme_sample_is_drawn_from_store_data(tmp_path: Path) -> None:
    from bench.chart_sample import main

    out = tmp_path / "usage.png"
    await main(out, member=False)
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
    assert all(colour in colours for _, colour in PALETTE)  # five members and the rest
    assert OTHERS[1] in colours
