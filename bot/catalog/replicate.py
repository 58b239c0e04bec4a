"""Replicate's entries for our catalog ids (RESELLERS_BEYOND_APIXO.md, section 2).

Replicate runs an official model as ``POST /models/{owner}/{name}/predictions`` with an
``input`` object; image shapes are fields of the same model (``image``/``last_frame``,
``start_image``/``end_image``, ``first_frame_image``) and durations are integers. Its
prices for these models are not published in the pages we have: the entries carry none,
so costs show as unknown until MODEL_PRICES names them (and a spend cap refuses them).
Unconfirmed details take the reading that fails safe, as in ``bot.catalog.fal``: Kling
2.5's end frame and Wan 2.5's text-to-video model are not offered.
"""

from __future__ import annotations

from typing import Any

from bot.catalog.spec import ImageRules, ModelSpec, Orientation, Shape

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT
_WIDE_TALL = {L: {"aspect_ratio": "16:9"}, P: {"aspect_ratio": "9:16"}}
_HOUR = 3600  # inputs and outputs are deleted an hour after a prediction
_HAILUO_IMAGES = ImageRules(formats=("JPEG", "PNG"), max_bytes=20 * 1024 * 1024,
                            min_short_side=301, aspect_exclusive=True)


def _timing(*durations: int, typical: tuple[int, int]) -> dict[str, Any]:
    return {"poll_first_s": dict.fromkeys(durations, 20.0), "poll_interval_s": 10.0,
            "typical_s": dict.fromkeys(durations, typical), "result_ttl_s": _HOUR,
            "requests_per_minute": 600}


def _veo(catalog_id: str, model: str, label: str) -> ModelSpec:
    return ModelSpec(
        provider="replicate",
        id=catalog_id,
        api_model=model,
        label=label,
        default=catalog_id == "veo-3-1-fast",
        shapes={Shape.TEXT: {}, Shape.IMAGE: {}, Shape.FRAMES: {}},
        durations=(4, 6, 8),
        text_fields=_WIDE_TALL,
        image_fields=_WIDE_TALL,
        input_extra={"resolution": "720p"},
        prompt_max=4_000,
        negative_prompt_max=1_000,
        seed_field="seed",
        image_field="image",
        image_list=False,
        end_image_field="last_frame",
        audio_field="generate_audio",
        **_timing(4, 6, 8, typical=(60, 180)),
    )


REPLICATE_MODELS: tuple[ModelSpec, ...] = (
    _veo("veo-3-1-fast", "google/veo-3.1-fast", "Veo 3.1 Fast (Replicate)"),
    _veo("veo-3-1", "google/veo-3.1", "Veo 3.1 (Replicate)"),
    ModelSpec(
        provider="replicate",
        id="kling-2-5-turbo-pro",
        api_model="kwaivgi/kling-v2.5-turbo-pro",
        label="Kling 2.5 Turbo Pro (Replicate)",
        durations=(5, 10),
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,  # the aspect is ignored with an image
        prompt_max=2_500,
        negative_prompt_max=2_500,
        image_field="start_image",
        image_list=False,
        **_timing(5, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="replicate",
        id="kling-2-1",
        api_model="kwaivgi/kling-v2.1",
        label="Kling 2.1 (Replicate: standard, or pro with an end frame)",
        shapes={Shape.IMAGE: {"mode": "standard"}, Shape.FRAMES: {"mode": "pro"}},
        durations=(5, 10),
        image_keeps_shape=True,
        prompt_max=2_500,
        negative_prompt_max=500,
        image_field="start_image",
        image_list=False,
        end_image_field="end_image",
        **_timing(5, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="replicate",
        id="wan-2-5-video",
        api_model="wan-video/wan-2.5-i2v",
        label="Wan 2.5 (Replicate, 720p; images only)",
        shapes={Shape.IMAGE: {}},
        durations=(5, 10),
        image_keeps_shape=True,
        input_extra={"resolution": "720p"},
        prompt_max=800,
        negative_prompt_max=500,
        seed_field="seed",
        image_field="image",
        image_list=False,
        image=ImageRules(max_bytes=20 * 1024 * 1024, min_short_side=240, max_side=8000,
                         alpha=False),
        **_timing(5, 10, typical=(100, 250)),
    ),
    ModelSpec(
        provider="replicate",
        id="hailuo-2-3",
        api_model="minimax/hailuo-2.3",
        label="Hailuo 2.3 (Replicate, 768p)",
        durations=(6, 10),
        orientations=(L,),
        image_keeps_shape=True,
        input_extra={"resolution": "768p"},
        prompt_max=2_000,
        image_field="first_frame_image",
        image_list=False,
        image=_HAILUO_IMAGES,
        **_timing(6, 10, typical=(60, 300)),
    ),
    ModelSpec(
        provider="replicate",
        id="hailuo-2-3-pro",
        api_model="minimax/hailuo-2.3",
        label="Hailuo 2.3 Pro (Replicate, 1080p)",
        durations=(6,),  # 1080p makes 6-second videos
        orientations=(L,),
        image_keeps_shape=True,
        input_extra={"resolution": "1080p"},
        prompt_max=2_000,
        image_field="first_frame_image",
        image_list=False,
        image=_HAILUO_IMAGES,
        **_timing(6, typical=(60, 300)),
    ),
)
