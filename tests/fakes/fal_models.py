"""The fal.ai emulator's endpoints, from the endpoint table of RESELLERS_BEYOND_APIXO.md
(section 1): each endpoint's input fields (types, values, what is required; anything else
is refused), and how long and how large the video it makes is. Written from the digest,
not from the bot's catalog. Readings where the digest is unsure:

- first-last-frame endpoints take exactly ``first_frame_url`` and ``last_frame_url``;
- ``tail_image_url`` is taken on Kling 2.5 Turbo Pro and 2.1 pro image-to-video only;
- Hailuo 2.3 Pro has no ``duration``: its videos are 6 s;
- frames: Veo at ``resolution`` (720p unless asked), Kling 2.1 standard 720p and every other
  Kling 1080p, Wan at ``resolution`` (1080p), Hailuo standard 768p and pro 1080p; an
  image-to-video without an aspect field follows its image (Veo's "auto": 16:9 or 9:16,
  whichever the image is nearer; the others keep the image's own aspect);
- data URIs only on Wan 2.5 image-to-video; Veo images at most 8 MB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .media import ImageInfo
from .schemas import (
    BOOL,
    IMAGE,
    IMAGE_OR_DATA,
    NUMBER01,
    SEED,
    URL,
    Schema,
    choice,
    frame,
    image_aspect,
    image_orientation,
    text,
)

Size = Callable[[dict[str, Any], ImageInfo | None], tuple[int, int]]


@dataclass(frozen=True)
class Endpoint:
    schema: Schema
    seconds: Callable[[dict[str, Any]], int]
    size: Size


def _duration(default: str) -> Callable[[dict[str, Any]], int]:
    return lambda body: int(str(body.get("duration", default)).removesuffix("s"))


def _fixed(seconds: int) -> Callable[[dict[str, Any]], int]:
    return lambda body: seconds


def _by_aspect(resolution: str | None, default_aspect: str = "16:9",
               default_resolution: str = "720p") -> Size:
    """A text-to-video: its ``aspect_ratio`` (and ``resolution`` when the endpoint has one)."""
    return lambda body, image: frame(resolution or body.get("resolution", default_resolution),
                                     body.get("aspect_ratio", default_aspect))


def _by_image(resolution: str | None, default_resolution: str = "1080p") -> Size:
    """An image-to-video that keeps its image's aspect."""
    return lambda body, image: frame(resolution or body.get("resolution", default_resolution),
                                     image_aspect(image))


def _veo_image(body: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    aspect = body.get("aspect_ratio", "auto")
    return frame(body.get("resolution", "720p"),
                 image_orientation(image) if aspect == "auto" else aspect)


# -- Veo 3.1 and Veo 3.1 Fast ---------------------------------------------------------------
VEO_IMAGE_BYTES = 8 * 1024 * 1024
_VEO = Schema({
    "prompt": text(), "duration": choice("4s", "6s", "8s"), "aspect_ratio": choice("16:9", "9:16"),
    "resolution": choice("720p", "1080p", "4k"), "generate_audio": BOOL,
    "negative_prompt": text(), "seed": SEED, "auto_fix": BOOL,
    "safety_tolerance": choice("1", "2", "3", "4", "5", "6"),
}, max_image_bytes=VEO_IMAGE_BYTES)
_AUTO = choice("auto", "16:9", "9:16")
_VEO_IMAGE = _VEO.with_(required=("image_url",), image_url=IMAGE, aspect_ratio=_AUTO)
_VEO_FRAMES = _VEO.with_(required=("first_frame_url", "last_frame_url"),
                         first_frame_url=IMAGE, last_frame_url=IMAGE, aspect_ratio=_AUTO)

# -- Kling 2.5 Turbo Pro and Kling 2.1 ------------------------------------------------------
_KLING = Schema({"prompt": text(2_500), "duration": choice("5", "10"),
                 "aspect_ratio": choice("16:9", "9:16", "1:1"), "negative_prompt": text(2_500),
                 "cfg_scale": NUMBER01})
_KLING_IMAGE = _KLING.with_(required=("image_url",), drop=("aspect_ratio",), image_url=IMAGE)
_KLING_TAIL = _KLING_IMAGE.with_(tail_image_url=IMAGE)

# -- Wan 2.5 preview ------------------------------------------------------------------------
_WAN = Schema({"prompt": text(), "negative_prompt": text(500), "duration": choice("5", "10"),
               "resolution": choice("480p", "720p", "1080p"),
               "aspect_ratio": choice("16:9", "9:16", "1:1"), "audio_url": URL,
               "enable_prompt_expansion": BOOL, "seed": SEED})
_WAN_IMAGE = _WAN.with_(required=("image_url",), drop=("aspect_ratio",), prompt=text(800),
                        image_url=IMAGE_OR_DATA)

# -- Hailuo 2.3 (standard 768p, pro 1080p) and Hailuo 2.3 Fast ------------------------------
_HAILUO = Schema({"prompt": text(), "prompt_optimizer": BOOL, "duration": choice("6", "10")})
_HAILUO_IMAGE = _HAILUO.with_(required=("image_url",), image_url=IMAGE)
_HAILUO_PRO = _HAILUO.with_(drop=("duration",))
_HAILUO_PRO_IMAGE = _HAILUO_IMAGE.with_(drop=("duration",))

_KLING_T2V = Endpoint(_KLING, _duration("5"), _by_aspect("1080p"))
_HAILUO_STD_I2V = Endpoint(_HAILUO_IMAGE, _duration("6"), _by_image("768p"))
_HAILUO_PRO_I2V = Endpoint(_HAILUO_PRO_IMAGE, _fixed(6), _by_image("1080p"))

ENDPOINTS: dict[str, Endpoint] = {
    **{f"fal-ai/veo3.1{tier}": Endpoint(_VEO, _duration("8s"), _by_aspect(None))
       for tier in ("", "/fast")},
    **{f"fal-ai/veo3.1{tier}/image-to-video": Endpoint(_VEO_IMAGE, _duration("8s"), _veo_image)
       for tier in ("", "/fast")},
    **{f"fal-ai/veo3.1{tier}/first-last-frame-to-video":
       Endpoint(_VEO_FRAMES, _duration("8s"), _veo_image) for tier in ("", "/fast")},
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": _KLING_T2V,
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video":
        Endpoint(_KLING_TAIL, _duration("5"), _by_image("1080p")),
    "fal-ai/kling-video/v2.1/standard/image-to-video":
        Endpoint(_KLING_IMAGE, _duration("5"), _by_image("720p")),
    "fal-ai/kling-video/v2.1/pro/image-to-video":
        Endpoint(_KLING_TAIL, _duration("5"), _by_image("1080p")),
    "fal-ai/kling-video/v2.1/master/image-to-video":
        Endpoint(_KLING_IMAGE, _duration("5"), _by_image("1080p")),
    "fal-ai/kling-video/v2.1/master/text-to-video": _KLING_T2V,
    "fal-ai/wan-25-preview/text-to-video":
        Endpoint(_WAN, _duration("5"), _by_aspect(None, default_resolution="1080p")),
    "fal-ai/wan-25-preview/image-to-video":
        Endpoint(_WAN_IMAGE, _duration("5"), _by_image(None)),
    "fal-ai/minimax/hailuo-2.3/standard/text-to-video":
        Endpoint(_HAILUO, _duration("6"), _by_aspect("768p")),
    "fal-ai/minimax/hailuo-2.3/standard/image-to-video": _HAILUO_STD_I2V,
    "fal-ai/minimax/hailuo-2.3/pro/text-to-video":
        Endpoint(_HAILUO_PRO, _fixed(6), _by_aspect("1080p")),
    "fal-ai/minimax/hailuo-2.3/pro/image-to-video": _HAILUO_PRO_I2V,
    "fal-ai/minimax/hailuo-2.3-fast/standard/image-to-video": _HAILUO_STD_I2V,
    "fal-ai/minimax/hailuo-2.3-fast/pro/image-to-video": _HAILUO_PRO_I2V,
}
