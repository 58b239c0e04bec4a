"""The soak benchmark's picture: one panel per sampled series over time, the warm-up
shaded, drawn with Pillow (already a dependency; no plotting library)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, GAP = 900, 170, 90, 20, 24
INK, GRID, SHADE, LINE = (30, 30, 30), (225, 225, 225), (240, 236, 226), (36, 99, 170)


def draw(path: Path, title: str, times: list[float], series: dict[str, list[float]],
         warmup_s: float, notes: dict[str, str]) -> None:
    """``times`` in seconds from the start; ``series`` name -> values (one per time)."""
    height = 40 + len(series) * (PANEL_H + GAP)
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((MARGIN_L, 12), title, fill=INK)
    end = max(times[-1], 1.0) if times else 1.0
    for index, (name, values) in enumerate(series.items()):
        top = 40 + index * (PANEL_H + GAP)
        _panel(pen, top, name, times, values, end, warmup_s, notes.get(name, ""))
    image.save(path)


def _panel(pen: ImageDraw.ImageDraw, top: int, name: str, times: list[float],
           values: list[float], end: float, warmup_s: float, note: str) -> None:
    left, right, bottom = MARGIN_L, WIDTH - MARGIN_R, top + PANEL_H - 22
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.1
    low, high = low - pad, high + pad

    def x(t: float) -> float:
        return left + (right - left) * t / end

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / (high - low)

    pen.rectangle([left, top, x(min(warmup_s, end)), bottom], fill=SHADE)
    for k in range(5):
        level = low + (high - low) * k / 4
        pen.line([left, y(level), right, y(level)], fill=GRID)
        pen.text((4, y(level) - 6), f"{level:,.1f}", fill=INK)
    pen.rectangle([left, top, right, bottom], outline=INK)
    points = [(x(t), y(v)) for t, v in zip(times, values, strict=True)]
    if len(points) > 1:
        pen.line(points, fill=LINE, width=2)
    minutes = int(end // 60)
    for m in range(minutes + 1):
        pen.text((x(m * 60) - 4, bottom + 4), f"{m}", fill=INK)
    pen.text((left, top - 14), f"{name}  {note}", fill=INK)
    pen.text((left - 50, bottom + 4), "minutes", fill=INK)
