"""Prices as the resellers publish them, and money as the bot counts it.

A reseller prices a model per second of video, per video, per video of a given length, or
per first N seconds plus a price for each second beyond (``Price``); sound may cost more.
The bot counts money in whole micro-dollars (millionths of a US dollar), so that sums and
caps compare exactly on both databases; ``dollars``/``micros`` convert at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

MICROS = 1_000_000


class Price(BaseModel):
    """What one video costs in US dollars: ``per_video`` covers the first ``included_s``
    seconds, and every second beyond them costs ``per_second``; a length named in
    ``by_length`` has that published price instead."""

    model_config = ConfigDict(frozen=True)

    per_second: float = Field(default=0.0, ge=0)
    per_video: float = Field(default=0.0, ge=0)
    included_s: int = Field(default=0, ge=0)
    by_length: Mapping[int, float] = Field(default_factory=dict)

    def cost(self, seconds: int) -> float:
        if seconds in self.by_length:
            return self.by_length[seconds]
        return self.per_video + self.per_second * max(0, seconds - self.included_s)

    def cost_micros(self, seconds: int) -> int:
        return micros(self.cost(seconds))

    def describe(self) -> str:
        """'$0.20/s', '$0.49 a video', '$0.35 for 5 s + $0.07/s more', '$0.28 (6 s), ...'."""
        if self.by_length:
            lengths = sorted(self.by_length.items())
            return ", ".join(f"{money(micros(v))} ({s} s)" for s, v in lengths)
        if self.per_video and self.included_s:
            return (f"{money(micros(self.per_video))} for {self.included_s} s + "
                    f"{money(micros(self.per_second))}/s more")
        if self.per_video:
            return f"{money(micros(self.per_video))} a video"
        return f"{money(micros(self.per_second))}/s"


def per_second(dollars: float) -> Price:
    return Price(per_second=dollars)


def per_video(dollars: float) -> Price:
    return Price(per_video=dollars)


def micros(dollars: float | Decimal | str) -> int:
    """Dollars -> whole micro-dollars, rounded half up (never a float sum)."""
    value = Decimal(str(dollars)) * MICROS
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def dollars(amount_micros: int) -> float:
    return amount_micros / MICROS


def parse_dollars(text: str) -> int:
    """'20', '2.50', '$7' -> micro-dollars; ValueError (a sentence) for anything else."""
    cleaned = text.strip().removeprefix("$").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"'{text.strip()[:20]}' is not an amount of dollars (write e.g. 20 "
                         "or 2.50)") from None
    if not value.is_finite() or value < 0:
        raise ValueError("an amount of dollars cannot be negative")
    if value > 1_000_000:
        raise ValueError("an amount of dollars must be under 1,000,000")
    return micros(value)


def money(amount_micros: int | None) -> str:
    """'$1.60', '$0.392', 'unknown': cents, or tenths of a cent where they matter."""
    if amount_micros is None:
        return "unknown"
    sign = "-" if amount_micros < 0 else ""
    value = Decimal(abs(amount_micros)) / MICROS
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == value or value >= 100:
        return f"{sign}${cents:,.2f}"
    mills = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return f"{sign}${mills:,.3f}" if mills != cents else f"{sign}${cents:,.2f}"
