"""fal.ai's entries for our catalog ids (RESELLERS_BEYOND_APIXO.md, section 1).

fal sells each model on one endpoint per request shape (text, image, first/last frame);
the endpoint takes the model's input as the whole JSON body. Durations are strings
("8s" for Veo, "5" for Kling and Wan, "6" for Hailuo). Where the digest leaves a detail
unconfirmed, the entry takes the reading that fails safe: a shape whose endpoint or
field names are unknown is not offered (a job never silently loses its end frame), a
length not stated is taken as the longer one (the quota never undercounts), and a limit
not stated is the smaller figure in the digest.
"""

from __future__ import annotations

from typing import Any

from bot.catalog.pricing import Price, per_second, per_video
from bot.catalog.spec import ImageRules, ModelSpec, Orientation, Shape

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT
_WIDE_TALL = {L: {"aspect_ratio": "16:9"}, P: {"aspect_ratio": "9:16"}}
_HOUR = 3600  # fal's CDN retention is not stated: the bot downloads at once anyway
# Veo's image pages: at least 720p, 8 MB at most (other shapes are cropped by fal).
_VEO_IMAGES = ImageRules(max_bytes=8 * 1024 * 1024, min_short_side=720)
_HAILUO_IMAGES = ImageRules(formats=("JPEG", "PNG"), max_bytes=20 * 1024 * 1024,
                            min_short_side=301, aspect_exclusive=True)


def _timing(*durations: int, typical: tuple[int, int]) -> dict[str, Any]:
    """fal publishes no polling advice: its queue answers status reads cheaply."""
    return {"poll_first_s": dict.fromkeys(durations, 20.0), "poll_interval_s": 10.0,
            "typical_s": dict.fromkeys(durations, typical), "result_ttl_s": _HOUR}


def _veo(catalog_id: str, path: str, label: str, silent: float, sound: float,
         frames: bool) -> ModelSpec:
    endpoints = {Shape.TEXT: path, Shape.IMAGE: f"{path}/image-to-video"}
    shapes: dict[Shape, dict[str, Any]] = {Shape.TEXT: {}, Shape.IMAGE: {}}
    if frames:
        endpoints[Shape.FRAMES] = f"{path}/first-last-frame-to-video"
        shapes[Shape.FRAMES] = {}
    return ModelSpec(
        provider="fal",
        id=catalog_id,
        api_model=path,
        label=label,
        default=catalog_id == "veo-3-1-fast",
        shapes=shapes,
        endpoints=endpoints,
        durations=(4, 6, 8),
        duration_type="str",
        duration_suffix="s",
        text_fields=_WIDE_TALL,
        image_fields=_WIDE_TALL,
        input_extra={"resolution": "720p"},
        prompt_max=4_000,  # not stated on fal: a Discord form's limit
        negative_prompt_max=1_000,
        seed_field="seed",
        image_field="image_url",
        image_list=False,
        shape_image_fields={Shape.FRAMES: ("first_frame_url", "last_frame_url")},
        audio_field="generate_audio",
        image=_VEO_IMAGES,
        price=per_second(silent),
        audio_price=per_second(sound),
        **_timing(4, 6, 8, typical=(60, 180)),
    )


def _kling_price(first_5s: float, per_extra_s: float) -> Price:
    return Price(per_video=first_5s, included_s=5, per_second=per_extra_s)


FAL_MODELS: tuple[ModelSpec, ...] = (
    # The first/last-frame page exists for Veo 3.1 Fast; for Veo 3.1 its id is unconfirmed.
    _veo("veo-3-1-fast", "fal-ai/veo3.1/fast", "Veo 3.1 Fast (fal.ai)", 0.10, 0.15, True),
    _veo("veo-3-1", "fal-ai/veo3.1", "Veo 3.1 (fal.ai)", 0.20, 0.40, False),
    ModelSpec(
        provider="fal",
        id="kling-2-5-turbo-pro",
        api_model="fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        label="Kling 2.5 Turbo Pro (fal.ai)",
        shapes={Shape.TEXT: {}, Shape.IMAGE: {}, Shape.FRAMES: {}},
        endpoints={Shape.IMAGE: "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
                   Shape.FRAMES: "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"},
        durations=(5, 10),
        duration_type="str",
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,
        prompt_max=2_500,
        negative_prompt_max=2_500,
        image_field="image_url",
        image_list=False,
        end_image_field="tail_image_url",
        price=_kling_price(0.35, 0.07),
        **_timing(5, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="fal",
        id="kling-2-1",
        api_model="fal-ai/kling-video/v2.1/master/text-to-video",
        label="Kling 2.1 (fal.ai: master for text, standard for images)",
        # An end frame on 2.1 pro is unconfirmed: not offered (APIXO's pro tier has it).
        shapes={Shape.TEXT: {}, Shape.IMAGE: {}},
        endpoints={Shape.IMAGE: "fal-ai/kling-video/v2.1/standard/image-to-video"},
        durations=(5, 10),
        duration_type="str",
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,
        prompt_max=2_500,
        negative_prompt_max=500,
        image_field="image_url",
        image_list=False,
        shape_prices={Shape.TEXT: _kling_price(1.40, 0.28),
                      Shape.IMAGE: _kling_price(0.28, 0.056)},
        **_timing(5, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="fal",
        id="wan-2-5-video",
        api_model="fal-ai/wan-25-preview/text-to-video",
        label="Wan 2.5 (fal.ai, 720p)",
        shapes={Shape.TEXT: {}, Shape.IMAGE: {}},
        endpoints={Shape.IMAGE: "fal-ai/wan-25-preview/image-to-video"},
        durations=(5, 10),
        duration_type="str",
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,
        input_extra={"resolution": "720p"},  # APIXO's tier; fal's default is 1080p
        prompt_max=800,  # the image page's cap; the text page states none
        negative_prompt_max=500,
        seed_field="seed",
        image_field="image_url",
        image_list=False,
        image=ImageRules(max_bytes=20 * 1024 * 1024, min_short_side=240, max_side=8000,
                         alpha=False),
        # $0.10/s at 720p on the image page; the text page is assumed the same.
        price=per_second(0.10),
        **_timing(5, 10, typical=(100, 250)),
    ),
    ModelSpec(
        provider="fal",
        id="hailuo-2-3",
        api_model="fal-ai/minimax/hailuo-2.3/standard/text-to-video",
        label="Hailuo 2.3 (fal.ai, 768p)",
        endpoints={Shape.IMAGE: "fal-ai/minimax/hailuo-2.3/standard/image-to-video"},
        durations=(6, 10),
        duration_type="str",
        orientations=(L,),  # no aspect field: text videos are landscape
        image_keeps_shape=True,
        prompt_max=2_000,
        image_field="image_url",
        image_list=False,
        image=_HAILUO_IMAGES,
        price=Price(by_length={6: 0.28, 10: 0.56}),
        **_timing(6, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="fal",
        id="hailuo-2-3-pro",
        api_model="fal-ai/minimax/hailuo-2.3/pro/text-to-video",
        label="Hailuo 2.3 Pro (fal.ai, 1080p)",
        endpoints={Shape.IMAGE: "fal-ai/minimax/hailuo-2.3/pro/image-to-video"},
        # No duration field: the length is not stated ("presumably 6 s"); counted as 6,
        # the longer reading, so the quota never undercounts.
        durations=(6,),
        duration_field=None,
        orientations=(L,),
        image_keeps_shape=True,
        prompt_max=2_000,
        image_field="image_url",
        image_list=False,
        image=_HAILUO_IMAGES,
        price=per_video(0.49),
        **_timing(6, typical=(60, 300)),
    ),
)
