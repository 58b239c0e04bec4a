"""Sandbox test cards: real, small H.264 MP4s drawn with Pillow and encoded with PyAV.

A card says plainly that it is a sandbox video, shows the prompt, the duration and the
orientation, and has a moving progress bar and clock so that it is visibly a video.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

from bot.catalog import Orientation

BANNER = "SANDBOX VIDEO — not made by AI, costs nothing"
_BG = (24, 26, 33)
_BANNER_BG = (230, 160, 20)
_FG = (235, 235, 235)
_DIM = (150, 155, 165)
_BAR = (80, 170, 250)
_PROMPT_MAX_CHARS = 600
# The bundled font has no glyph for these: draw a look-alike instead of a box.
_LOOKALIKES = str.maketrans({"—": " - ", "–": "-", "‒": "-", "―": "-", "×": "x"})

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def make_test_card(
    path: Path,
    *,
    prompt: str,
    duration_s: int,
    orientation: Orientation,
    fps: int = 12,
    size: tuple[int, int] = (640, 360),
    audio: bool = False,
) -> None:
    """Write a ``duration_s`` second test-card MP4 to ``path`` (atomically).

    ``size`` is the landscape size; portrait cards use it turned on its side. With
    ``audio`` the file also carries a silent AAC track, like real provider output.
    """
    if duration_s <= 0 or fps <= 0:
        raise ValueError("duration_s and fps must be positive")
    long_side, short_side = max(size), min(size)
    width, height = (
        (long_side, short_side) if orientation is Orientation.LANDSCAPE else (short_side, long_side)
    )
    width, height = width - width % 2, height - height % 2
    background = _draw_static(width, height, prompt, duration_s, orientation)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        _encode(tmp, background, duration_s, fps, audio)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode(tmp: Path, background: Image.Image, duration_s: int, fps: int, audio: bool) -> None:
    width, height = background.size
    n_frames = duration_s * fps
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        vstream = out.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"preset": "ultrafast", "crf": "30", "tune": "stillimage"}
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=48000)
            astream.bit_rate = 32_000
            astream.layout = "mono"
        for index in range(n_frames):
            image = _draw_frame(background, index / fps, duration_s)
            rgba = image.convert("RGBA").tobytes()
            rgb = av.VideoFrame.from_bytes(rgba, width, height, format="rgba")
            frame = rgb.reformat(format="yuv420p")
            frame.pts = index
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))
        if astream is not None:
            _silence(out, astream, duration_s)


def _silence(out: av.container.OutputContainer, astream: av.AudioStream, duration_s: int) -> None:
    rate = 48000
    chunk = 1024
    total = duration_s * rate
    for start in range(0, total, chunk):
        samples = min(chunk, total - start)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        out.mux(astream.encode(frame))
    out.mux(astream.encode(None))


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=max(8, size))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, max_width: int) -> list[str]:
    """Greedy word wrap by measured width; over-long words are cut into pieces."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while draw.textlength(word, font=font) > max_width and len(word) > 1:
                low, high = 1, len(word)  # longest prefix that fits: binary search
                while low < high:
                    mid = (low + high + 1) // 2
                    if draw.textlength(word[:mid], font=font) <= max_width:
                        low = mid
                    else:
                        high = mid - 1
                cut = low
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if draw.textlength(candidate, font=font) <= max_width:
                line = candidate
            else:
                lines.append(line)
                line = word
        if line:
            lines.append(line)
    return lines


def _fit_lines(
    draw: ImageDraw.ImageDraw, lines: list[str], font: Font, max_width: int, max_lines: int
) -> list[str]:
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    last = kept[-1]
    while last and draw.textlength(last + " …", font=font) > max_width:
        last = last[:-1]
    kept[-1] = (last.rstrip() + " …").strip()
    return kept


def _draw_static(
    width: int, height: int, prompt: str, duration_s: int, orientation: Orientation
) -> Image.Image:
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)
    margin = max(8, width // 32)
    inner = width - 2 * margin
    # Banner: as large as fits on one or two lines.
    short = min(width, height)
    banner_font = _font(max(12, short // 18))
    banner_lines = _wrap(draw, BANNER.translate(_LOOKALIKES).replace("  ", " "), banner_font, inner)
    line_h = int(banner_font.size * 1.3) if isinstance(banner_font, ImageFont.FreeTypeFont) else 14
    banner_h = line_h * len(banner_lines) + margin
    draw.rectangle((0, 0, width, banner_h), fill=_BANNER_BG)
    y = margin // 2
    for line in banner_lines:
        draw.text((margin, y), line, font=banner_font, fill=(0, 0, 0))
        y += line_h
    # Prompt, word-wrapped and cut to the room left above the footer.
    text_font = _font(max(11, short // 24))
    text_h = int(getattr(text_font, "size", 11) * 1.35)
    footer_top = height - 3 * text_h - margin
    y = banner_h + margin // 2
    draw.text((margin, y), "Prompt:", font=text_font, fill=_DIM)
    y += text_h
    clipped = " ".join(prompt.translate(_LOOKALIKES).split()) or "(empty prompt)"
    if len(clipped) > _PROMPT_MAX_CHARS:
        clipped = clipped[: _PROMPT_MAX_CHARS - 1].rstrip() + "…"
    room = max(1, (footer_top - y) // text_h)
    for line in _fit_lines(draw, _wrap(draw, clipped, text_font, inner), text_font, inner, room):
        draw.text((margin, y), line, font=text_font, fill=_FG)
        y += text_h
    info = f"{duration_s} s · {orientation.value} · sandbox test card"
    draw.text((margin, footer_top), info, font=text_font, fill=_DIM)
    return image


def _draw_frame(background: Image.Image, t: float, duration_s: int) -> Image.Image:
    image = background.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    margin = max(8, width // 32)
    font = _font(max(11, min(width, height) // 24))
    text_h = int(getattr(font, "size", 11) * 1.35)
    bar_top = height - margin - text_h // 2
    bar_bottom = height - margin
    fraction = min(1.0, t / duration_s)
    draw.rectangle((margin, bar_top, width - margin, bar_bottom), outline=_DIM)
    fill_right = margin + int((width - 2 * margin) * fraction)
    if fill_right > margin:
        draw.rectangle((margin, bar_top, fill_right, bar_bottom), fill=_BAR)
    clock = f"{_mmss(t)}.{int(t * 10) % 10} / {_mmss(duration_s)}"
    draw.text((margin, bar_top - text_h - 2), clock, font=font, fill=_FG)
    # A dot that sweeps right of the clock, so that motion is obvious even in a thumbnail.
    radius = max(4, text_h // 3)
    left = margin + int(draw.textlength("00:00.0 / 00:00", font=font)) + margin + radius
    right = width - margin - radius
    x = left + int(max(0, right - left) * ((t % 2.0) / 2.0))
    cy = bar_top - text_h // 2 - 2
    draw.ellipse((x - radius, cy - radius, x + radius, cy + radius), fill=_BANNER_BG)
    return image


def _mmss(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"
