"""The APIXO emulator's per-model ``input`` rules, from MODELS_AFTER_SORA.md (APIXO's model
pages for Veo 3.1, Wan 2.5, Kling 2.5 Turbo Pro, Kling 2.1 and Hailuo 2.3).

Each ``ModelCase`` checks an ``input`` object exactly as its page describes (a message for a
400, or None), names the image URLs to fetch, checks the fetched images against the page's
image rules, and says how long and how large the made video is. Written from the pages,
not from the bot's catalog. Adding a model to the emulator is one more case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .media import ImageInfo, is_http_url, is_int

Check = Callable[[dict[str, Any]], "str | None"]
SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720), "4:3": (960, 720),
         "3:4": (720, 960)}


@dataclass(frozen=True)
class ImagePage:
    """A page's image rules."""

    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    min_side: int = 1  # every side at least this
    max_side: int = 100_000
    min_short_side_over: int = 0  # the short side must be over this
    aspect_strictly_between: tuple[float, float] | None = None

    def problem(self, info: ImageInfo) -> str | None:
        if info.format not in self.formats:
            return f"image format {info.format} is not accepted ({', '.join(self.formats)})"
        short, long = sorted((info.width, info.height))
        if short < self.min_side or long > self.max_side:
            return f"each image side must be {self.min_side}-{self.max_side} px"
        if short <= self.min_short_side_over:
            return f"the short side must be over {self.min_short_side_over} px"
        if self.aspect_strictly_between is not None:
            low, high = self.aspect_strictly_between
            if not low < info.width / info.height < high:
                return "the image aspect ratio must be strictly between 2:5 and 5:2"
        return None


@dataclass(frozen=True)
class ModelCase:
    check: Check
    images: Callable[[dict[str, Any]], list[str]]
    duration: Callable[[dict[str, Any]], int]
    size: Callable[[dict[str, Any], ImageInfo | None], tuple[int, int]]
    image_page: ImagePage = ImagePage()


# ----- shared field checks -----------------------------------------------------------------
def _unknown(inp: dict[str, Any], allowed: set[str]) -> str | None:
    extra = sorted(set(inp) - allowed)
    return f"input.{extra[0]} is not a field of this model" if extra else None


def _text(inp: dict[str, Any], name: str, low: int, high: int, required: bool) -> str | None:
    value = inp.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not low <= len(value) <= high:
        return f"input.{name} must be a string of {low}-{high} characters"
    return None


def _choice(inp: dict[str, Any], name: str, options: tuple[Any, ...], required: bool,
            ints: bool = False) -> str | None:
    if name not in inp:
        return f"input.{name} is required" if required else None
    value = inp[name]
    if (ints and not is_int(value)) or (not ints and not isinstance(value, str)) \
            or value not in options:
        return f"input.{name} must be one of {', '.join(map(str, options))}"
    return None


def _urls(inp: dict[str, Any], low: int, high: int) -> str | None:
    urls = inp.get("image_urls")
    if high == 0:
        return "input.image_urls is not accepted in this mode" if urls is not None else None
    if not isinstance(urls, list) or not low <= len(urls) <= high \
            or not all(is_http_url(u) for u in urls):
        return f"input.image_urls must hold {low}-{high} http(s) URLs in this mode"
    return None


def _seed(inp: dict[str, Any]) -> str | None:
    return "input.seed must be an integer" if "seed" in inp and not is_int(inp["seed"]) else None


def _cfg(inp: dict[str, Any]) -> str | None:
    if "cfg_scale" not in inp:
        return None
    value = inp["cfg_scale"]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1 \
        and abs(value * 10 - round(value * 10)) < 1e-9
    return None if ok else "input.cfg_scale must be 0-1 in steps of 0.1"


def _first(*problems: Callable[[], str | None]) -> str | None:
    for problem in problems:
        found = problem()
        if found:
            return found
    return None


def _image_urls(inp: dict[str, Any]) -> list[str]:
    urls = inp.get("image_urls")
    return list(urls) if isinstance(urls, list) else []


def _by_aspect(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    aspect = inp.get("aspect_ratio")
    if aspect in SIZES:
        return SIZES[aspect]
    if image is not None:
        return (1280, 720) if image.width >= image.height else (720, 1280)
    return SIZES["16:9"]


# ----- Veo 3.1 -----------------------------------------------------------------------------
VEO_TYPES = ("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO")


def _veo(inp: dict[str, Any]) -> str | None:
    kind = inp.get("generationType")
    urls = {"TEXT_2_VIDEO": (0, 0), "FIRST_AND_LAST_FRAMES_2_VIDEO": (1, 2),
            "REFERENCE_2_VIDEO": (1, 3)}.get(kind, (0, 0))
    return _first(
        lambda: _unknown(inp, {"mode", "generationType", "prompt", "aspect_ratio", "image_urls",
                               "seed", "watermark", "enableTranslation"}),
        lambda: _choice(inp, "mode", ("quality", "fast"), required=True),
        lambda: _choice(inp, "generationType", VEO_TYPES, required=True),
        lambda: _text(inp, "prompt", 1, 10_000, required=True),
        lambda: _choice(inp, "aspect_ratio", ("16:9", "9:16", "auto"), required=False),
        lambda: _urls(inp, *urls),
        lambda: ("REFERENCE_2_VIDEO takes fast mode and 16:9 only"
                 if kind == "REFERENCE_2_VIDEO"
                 and (inp.get("mode") != "fast" or inp.get("aspect_ratio") != "16:9") else None),
        lambda: _seed(inp),
        lambda: ("input.enableTranslation must be a boolean" if "enableTranslation" in inp
                 and not isinstance(inp["enableTranslation"], bool) else None),
    )


VEO_SECONDS = 8  # the page has no duration field; Veo 3.1 clips are 8 seconds

# ----- Wan 2.5 (newer page) ----------------------------------------------------------------


def _wan(inp: dict[str, Any]) -> str | None:
    mode = inp.get("mode")
    text = mode == "text-to-video"
    aspects = ("16:9", "9:16", "1:1")
    if inp.get("resolution") in ("720p", "1080p"):
        aspects += ("4:3", "3:4")
    return _first(
        lambda: _unknown(inp, {"mode", "prompt", "negative_prompt", "duration", "resolution",
                               "aspect_ratio", "image_urls", "seed", "enable_prompt_expansion",
                               "audio_urls"}),
        lambda: _choice(inp, "mode", ("text-to-video", "image-to-video"), required=True),
        lambda: _text(inp, "prompt", 1, 1_500, required=text),
        lambda: _text(inp, "negative_prompt", 0, 500, required=False),
        lambda: _choice(inp, "duration", (5, 10), required=True, ints=True),
        lambda: _choice(inp, "resolution", ("480p", "720p", "1080p"), required=False),
        lambda: (_choice(inp, "aspect_ratio", aspects, required=False) if text else
                 "input.aspect_ratio is for text-to-video only" if "aspect_ratio" in inp
                 else None),
        lambda: _urls(inp, 1, 1) if not text else _urls(inp, 0, 0),
        lambda: _seed(inp),
        lambda: ("input.audio_urls must hold one http(s) URL" if "audio_urls" in inp and not (
            isinstance(inp["audio_urls"], list) and len(inp["audio_urls"]) == 1
            and is_http_url(inp["audio_urls"][0])) else None),
    )


# ----- Kling 2.5 Turbo Pro and Kling 2.1 ---------------------------------------------------
_KLING_FIELDS = {"mode", "prompt", "negative_prompt", "duration", "aspect_ratio", "image_urls",
                 "cfg_scale"}


def _kling_25(inp: dict[str, Any]) -> str | None:
    text = inp.get("mode") == "text-to-video"
    return _first(
        lambda: _unknown(inp, _KLING_FIELDS),
        lambda: _choice(inp, "mode", ("text-to-video", "image-to-video"), required=True),
        lambda: _choice(inp, "duration", (5, 10), required=True, ints=True),
        lambda: (_choice(inp, "aspect_ratio", ("16:9", "9:16", "1:1"), required=False) if text
                 else "input.aspect_ratio is for text-to-video only" if "aspect_ratio" in inp
                 else None),
        lambda: _text(inp, "prompt", 1, 2_500, required=True),
        lambda: _text(inp, "negative_prompt", 0, 2_500, required=False),
        lambda: _urls(inp, 0, 0) if text else _urls(inp, 1, 2),
        lambda: _cfg(inp),
    )


KLING_21_IMAGES = {"standard-image-to-video": (1, 1), "pro-image-to-video": (1, 2),
                   "master-text-to-video": (0, 0), "master-image-to-video": (1, 1)}


def _kling_21(inp: dict[str, Any]) -> str | None:
    mode = inp.get("mode")
    return _first(
        lambda: _unknown(inp, _KLING_FIELDS),
        lambda: _choice(inp, "mode", tuple(KLING_21_IMAGES), required=True),
        lambda: _choice(inp, "duration", (5, 10), required=True, ints=True),
        lambda: _choice(inp, "aspect_ratio", ("16:9", "9:16", "1:1"),
                        required=mode == "master-text-to-video"),
        lambda: _text(inp, "prompt", 1, 5_000, required=True),
        lambda: _text(inp, "negative_prompt", 0, 500, required=False),
        lambda: _urls(inp, *KLING_21_IMAGES.get(str(mode), (0, 0))),
        lambda: _cfg(inp),
    )


# ----- Hailuo 2.3 --------------------------------------------------------------------------
HAILUO_MODES = ("standard-text-to-video", "standard-image-to-video", "pro-text-to-video",
                "pro-image-to-video")


def _hailuo(inp: dict[str, Any]) -> str | None:
    mode = str(inp.get("mode"))
    pro = mode.startswith("pro-")
    return _first(
        lambda: _unknown(inp, {"mode", "prompt", "duration", "image_urls"}),
        lambda: _choice(inp, "mode", HAILUO_MODES, required=True),
        lambda: (_choice(inp, "duration", (5,), required=False, ints=True) if pro
                 else _choice(inp, "duration", (6, 10), required=True, ints=True)),
        lambda: _text(inp, "prompt", 1, 100_000, required=mode.endswith("text-to-video")),
        lambda: _urls(inp, 1, 1) if mode.endswith("image-to-video") else _urls(inp, 0, 0),
    )


def _hailuo_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    wide = (1920, 1080) if str(inp.get("mode")).startswith("pro-") else (1366, 768)
    if image is not None and image.height > image.width:
        return wide[1], wide[0]
    return wide


def _duration(inp: dict[str, Any]) -> int:
    return int(inp["duration"])


CASES: dict[str, ModelCase] = {
    "veo-3-1": ModelCase(_veo, _image_urls, lambda inp: VEO_SECONDS, _by_aspect,
                         ImagePage(formats=("JPEG", "PNG"))),
    "wan-2-5-video": ModelCase(_wan, _image_urls, _duration, _by_aspect,
                               ImagePage(formats=("JPEG", "PNG", "BMP", "WEBP"), min_side=240,
                                         max_side=8000)),
    "kling-2-5-turbo-pro": ModelCase(_kling_25, _image_urls, _duration, _by_aspect),
    "kling-2-1": ModelCase(_kling_21, _image_urls, _duration, _by_aspect),
    "hailuo-2-3": ModelCase(
        _hailuo, _image_urls,
        lambda inp: 5 if str(inp.get("mode")).startswith("pro-") else int(inp["duration"]),
        _hailuo_size,
        ImagePage(formats=("JPEG", "PNG"), min_short_side_over=300,
                  aspect_strictly_between=(2 / 5, 5 / 2)),
    ),
}
