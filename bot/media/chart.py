"""The /usage picture: seconds of video per day as stacked bars, drawn with Pillow.

Pillow is already a dependency and draws this in a few milliseconds for about 1.5 MB of
memory; matplotlib would add a quarter of a second and ~40 MB to the process (see the
README). ``ImageDraw`` is imported only when a chart is drawn, and callers run ``draw``
off the event loop (it encodes a PNG). Pure: no I/O, no Discord, no database.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from bot.quota import Period, period_window

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

    from bot.store.charts import DayUsage

WIDTH, HEIGHT = 720, 300
Colour = tuple[int, int, int]
# The colours of Discord's square emoji, so a reply's text can name each series.
PALETTE: tuple[tuple[str, Colour], ...] = (
    ("🟦", (85, 172, 238)), ("🟧", (244, 144, 12)), ("🟩", (120, 177, 89)),
    ("🟪", (170, 142, 214)), ("🟥", (221, 46, 68)),
)
OTHERS: tuple[str, Colour] = ("⬜", (200, 202, 205))
BACKGROUND, TEXT, MUTED, GRID, LIMIT = (
    (43, 45, 49), (219, 222, 225), (148, 155, 164), (63, 65, 71), (242, 63, 67))
TOP_N = 5
# Plot area inside the picture.
LEFT, RIGHT, TOP, BOTTOM = 60, WIDTH - 18, 48, HEIGHT - 58


class Series(NamedTuple):
    label: str
    emoji: str
    colour: Colour
    values: list[int]  # seconds per day, one per chart day
    user_id: int | None = None


@dataclass(frozen=True)
class UsageChart:
    title: str
    days: list[date]
    series: list[Series]
    today: date
    daily_limit: int | None = None  # drawn as a line when the quota is per day

    @property
    def total(self) -> int:
        return sum(sum(s.values) for s in self.series)


def chart_days(period: Period, now: float) -> list[date]:
    """The days a chart shows: the period's calendar days; a daily quota shows 7 days."""
    start, end = period_window(period, now)
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date() - timedelta(days=1)
    if period == "day":
        first = last - timedelta(days=6)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_bounds(days: Sequence[date]) -> tuple[float, float]:
    """[start, end) epoch seconds covering ``days`` (UTC)."""
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    return start.timestamp(), (start + timedelta(days=len(days))).timestamp()


def member_series(rows: Sequence[DayUsage], days: Sequence[date], top_n: int = TOP_N
                  ) -> list[Series]:
    """For moderators: the top members by seconds, one series each, then everyone else."""
    totals: dict[int | None, int] = {}
    for row in rows:
        totals[row.user_id] = totals.get(row.user_id, 0) + row.seconds
    ranked = sorted((u for u in totals if u is not None and totals[u] > 0),
                    key=lambda u: (-totals[u], u))[:top_n]
    series = [Series(f"#{rank}", emoji, colour, _per_day(rows, days, {user}), user)
              for rank, (user, (emoji, colour)) in enumerate(zip(ranked, PALETTE, strict=False),
                                                           start=1)]
    rest = _per_day(rows, days, set(ranked), invert=True)
    if any(rest):
        series.append(Series("others", OTHERS[0], OTHERS[1], rest))
    return series


def viewer_series(rows: Sequence[DayUsage], days: Sequence[date], viewer: int) -> list[Series]:
    """For a member: their own seconds and everyone else's."""
    emoji, colour = PALETTE[0]
    return [
        Series("you", emoji, colour, _per_day(rows, days, {viewer}), viewer),
        Series("everyone else", OTHERS[0], OTHERS[1],
               _per_day(rows, days, {viewer}, invert=True)),
    ]


def _per_day(rows: Sequence[DayUsage], days: Sequence[date], users: set[int | None], *,
             invert: bool = False) -> list[int]:
    index = {day: i for i, day in enumerate(days)}
    values = [0] * len(days)
    for row in rows:
        if row.day in index and (row.user_id in users) != invert:
            values[index[row.day]] += row.seconds
    return values


def nice_ceiling(value: float) -> int:
    """A round axis maximum at or above ``value`` whose quarters read well."""
    if value <= 8:
        return 8
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.6, 2, 3, 4, 5, 6, 8, 10):
        if value <= step * power:
            return math.ceil(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def draw(chart: UsageChart) -> bytes:
    """The chart as PNG bytes (WIDTH x HEIGHT). Run it off the event loop."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    pen = ImageDraw.Draw(image)
    big, small = ImageFont.load_default(size=17), ImageFont.load_default(size=12)
    pen.text((LEFT - 44, 12), chart.title, font=big, fill=TEXT)
    total = f"{chart.total} s"
    pen.text((RIGHT - pen.textlength(total, font=big), 12), total, font=big, fill=TEXT)

    stacks = [sum(s.values[i] for s in chart.series) for i in range(len(chart.days))]
    top = nice_ceiling(max([*stacks, chart.daily_limit or 0, 1]) * 1.05)
    height = BOTTOM - TOP

    def y_of(seconds: float) -> float:
        return BOTTOM - height * seconds / top

    for i in range(5):
        value = top * i / 4
        y = y_of(value)
        pen.line([(LEFT, y), (RIGHT, y)], fill=GRID, width=1)
        label = f"{value:g} s"
        pen.text((LEFT - 8 - pen.textlength(label, font=small), y - 8), label, font=small,
                 fill=MUTED)

    slot = (RIGHT - LEFT) / len(chart.days)
    bar = max(2.0, slot * 0.68)
    for i, day in enumerate(chart.days):
        x0 = LEFT + slot * i + (slot - bar) / 2
        base = 0
        for series in chart.series:
            seconds = series.values[i]
            if seconds > 0:
                pen.rectangle([x0, y_of(base + seconds), x0 + bar, y_of(base) - 1],
                              fill=series.colour)
                base += seconds
        _day_label(pen, small, chart, day, i, LEFT + slot * i + slot / 2)

    if chart.daily_limit:
        y = y_of(chart.daily_limit)
        for x in range(LEFT, RIGHT, 12):
            pen.line([(x, y), (min(x + 6, RIGHT), y)], fill=LIMIT, width=2)
        label = f"quota {chart.daily_limit} s"
        pen.text((RIGHT - pen.textlength(label, font=small), y - 16), label, font=small,
                 fill=LIMIT)
    if chart.total == 0:
        note = "No video yet in these days"
        pen.text(((LEFT + RIGHT - pen.textlength(note, font=big)) / 2, TOP + height / 2 - 10),
                 note, font=big, fill=MUTED)
    _legend(pen, small, chart.series)

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _day_label(pen: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
               chart: UsageChart, day: date, i: int, centre: float) -> None:
    many = len(chart.days) > 10
    if many and i % 2 and day != chart.today:
        return  # a month shows every other day number (and today)
    text = str(day.day) if many else day.strftime("%a %d")
    colour = TEXT if day == chart.today else MUTED
    pen.text((centre - pen.textlength(text, font=font) / 2, BOTTOM + 6), text, font=font,
             fill=colour)


def _legend(pen: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
            series: Sequence[Series]) -> None:
    x, y = float(LEFT), HEIGHT - 24
    for item in series:
        pen.rectangle([x, y + 2, x + 11, y + 13], fill=item.colour)
        pen.text((x + 16, y), item.label, font=font, fill=TEXT)
        x += 16 + pen.textlength(item.label, font=font) + 18
