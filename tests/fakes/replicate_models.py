"""The Replicate emulator's models, from the model table of RESELLERS_BEYOND_APIXO.md
(section 2): each model's ``input`` fields (types, values, what is required; anything else
is refused), the rules across fields the pages state, and how long and how large the
video is. Written from the digest, not from the bot's catalog. Readings where the digest
is unsure:

- ``prompt`` is required on every model;
- kling-v2.5-turbo-pro takes ``end_image`` (unconfirmed there) and the deprecated ``image``;
  kling-v2.1 takes ``end_image`` with ``mode: "pro"`` only; ``mode`` defaults to standard;
- wan-2.5-t2v takes ``resolution`` or ``size`` ("1280*720"); with both, ``size`` decides;
- hailuo-2.3-fast is image-to-video only: ``first_frame_image`` is required;
- veo-3.1's ``reference_images`` need 16:9 and 8 s;
- frames: Veo at ``resolution`` (1080p on veo-3.1, 720p on fast) and ``aspect_ratio``
  (with neither aspect nor image, 16:9; with an image and no aspect, the nearer of 16:9
  and 9:16), Kling 1080p (2.1 standard 720p), Wan at ``resolution`` (720p), Hailuo at
  ``resolution`` (768p); Kling, Wan i2v and Hailuo with an image keep the image's aspect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .media import ImageInfo
from .schemas import (
    BOOL,
    IMAGE,
    SEED,
    URL,
    Schema,
    choice,
    frame,
    image_aspect,
    image_orientation,
    images,
    text,
)

Cross = Callable[[dict[str, Any]], "tuple[str, str] | None"]  # -> (field, message)
Size = Callable[[dict[str, Any], ImageInfo | None], tuple[int, int]]


@dataclass(frozen=True)
class Model:
    schema: Schema
    default_seconds: int
    size: Size
    cross: Cross = lambda inp: None

    def seconds(self, inp: dict[str, Any]) -> int:
        return int(inp.get("duration", self.default_seconds))


# -- Veo 3.1 and Veo 3.1 Fast ---------------------------------------------------------------
_VEO = Schema({"prompt": text(), "image": IMAGE, "last_frame": IMAGE,
               "reference_images": images(3), "aspect_ratio": choice("16:9", "9:16"),
               "duration": choice(4, 6, 8), "resolution": choice("720p", "1080p"),
               "negative_prompt": text(), "generate_audio": BOOL, "seed": SEED})


def _veo_size(default_resolution: str) -> Size:
    def size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
        aspect = inp.get("aspect_ratio") or image_orientation(image)
        return frame(inp.get("resolution", default_resolution), aspect)
    return size


def _veo_references(inp: dict[str, Any]) -> tuple[str, str] | None:
    if "reference_images" in inp and (inp.get("aspect_ratio", "16:9") != "16:9"
                                      or inp.get("duration", 8) != 8):
        return "reference_images", "reference_images need aspect_ratio 16:9 and duration 8"
    return None


# -- Kling ------------------------------------------------------------------------------------
_KLING_25 = Schema({"prompt": text(2_500), "start_image": IMAGE, "image": IMAGE,
                    "end_image": IMAGE, "aspect_ratio": choice("16:9", "9:16", "1:1"),
                    "duration": choice(5, 10), "negative_prompt": text(2_500)})
_KLING_21 = Schema({"prompt": text(2_500), "start_image": IMAGE, "end_image": IMAGE,
                    "mode": choice("standard", "pro"), "duration": choice(5, 10),
                    "negative_prompt": text(2_500)}, required=frozenset({"prompt", "start_image"}))


def _kling_25_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    if image is not None:  # aspect_ratio is ignored with an image
        return frame("1080p", image_aspect(image))
    return frame("1080p", inp.get("aspect_ratio", "16:9"))


def _kling_21_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    return frame("1080p" if inp.get("mode") == "pro" else "720p", image_aspect(image))


def _kling_21_end(inp: dict[str, Any]) -> tuple[str, str] | None:
    if "end_image" in inp and inp.get("mode", "standard") != "pro":
        return "end_image", "end_image needs mode pro"
    return None


# -- Wan 2.5 ----------------------------------------------------------------------------------
_WAN = Schema({"prompt": text(), "duration": choice(5, 10),
               "resolution": choice("480p", "720p", "1080p"), "negative_prompt": text(),
               "audio": URL, "enable_prompt_expansion": BOOL, "seed": SEED})
WAN_SIZES = ("1280*720", "720*1280", "832*480", "480*832", "1920*1080", "1080*1920")


def _wan_i2v_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    return frame(inp.get("resolution", "720p"), image_aspect(image))


def _wan_t2v_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    if "size" in inp:
        width, height = inp["size"].split("*")
        return int(width), int(height)
    return frame(inp.get("resolution", "720p"), "16:9")


# -- Hailuo 2.3 -------------------------------------------------------------------------------
_HAILUO = Schema({"prompt": text(), "first_frame_image": IMAGE, "duration": choice(6, 10),
                  "resolution": choice("768p", "1080p"), "prompt_optimizer": BOOL})


def _hailuo_size(inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    return frame(inp.get("resolution", "768p"), image_aspect(image))


def _hailuo_length(inp: dict[str, Any]) -> tuple[str, str] | None:
    if inp.get("resolution") == "1080p" and inp.get("duration", 6) != 6:
        return "duration", "10 second videos are made at 768p only; 1080p videos are 6 seconds"
    return None


MODELS: dict[str, Model] = {
    "google/veo-3.1": Model(_VEO, 8, _veo_size("1080p"), _veo_references),
    "google/veo-3.1-fast": Model(_VEO.with_(drop=("reference_images",)), 8, _veo_size("720p")),
    "kwaivgi/kling-v2.5-turbo-pro": Model(_KLING_25, 5, _kling_25_size),
    "kwaivgi/kling-v2.1": Model(_KLING_21, 5, _kling_21_size, _kling_21_end),
    "wan-video/wan-2.5-i2v": Model(_WAN.with_(required=("image",), image=IMAGE), 5,
                                   _wan_i2v_size),
    "wan-video/wan-2.5-t2v": Model(_WAN.with_(size=choice(*WAN_SIZES)), 5, _wan_t2v_size),
    "minimax/hailuo-2.3": Model(_HAILUO, 6, _hailuo_size, _hailuo_length),
    "minimax/hailuo-2.3-fast": Model(_HAILUO.with_(required=("first_frame_image",)), 6,
                                     _hailuo_size, _hailuo_length),
}
