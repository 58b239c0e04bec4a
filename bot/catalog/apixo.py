"""APIXO's models (seeds 000, 001, 004 and MODELS_AFTER_SORA.md), one entry each.

The Sora entries are retired (OpenAI removed the Sora 2 API on 2026-09-24): kept so an
owner may still set MODEL to one explicitly. The next model APIXO adds is one more entry.
"""

from __future__ import annotations

from typing import Any

from bot.catalog.pricing import per_second, per_video
from bot.catalog.spec import ImageRules, ModelSpec, Orientation, Shape

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT
_DAYS_15 = 15 * 24 * 3600
_WIDE_TALL = {L: {"aspect_ratio": "16:9"}, P: {"aspect_ratio": "9:16"}}


def _modes(text: str, image: str, frames: str | None = None, field: str = "mode"
           ) -> dict[Shape, dict[str, Any]]:
    """The input field (``mode`` or ``generationType``) that selects each request shape."""
    shapes = {Shape.TEXT: {field: text}, Shape.IMAGE: {field: image}}
    if frames is not None:
        shapes[Shape.FRAMES] = {field: frames}
    return shapes


def _veo(catalog_id: str, tier: str, label: str, price: float) -> ModelSpec:
    return ModelSpec(
        provider="apixo",
        id=catalog_id,
        api_model="veo-3-1",
        label=label,
        default=tier == "fast",
        shapes=_modes("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO",
                      "FIRST_AND_LAST_FRAMES_2_VIDEO", field="generationType"),
        # The page has no duration field: Veo 3.1 makes 8-second clips.
        durations=(8,),
        duration_field=None,
        text_fields=_WIDE_TALL,
        image_fields=_WIDE_TALL,
        input_extra={"mode": tier},
        prompt_max=10_000,
        seed_field="seed",
        image=ImageRules(formats=("JPEG", "PNG"), max_bytes=10 * 1024 * 1024),
        price=per_video(price),
        poll_first_s={8: 60.0},
        typical_s={8: (90, 180)},
        result_ttl_s=_DAYS_15,
    )


def _kling_hailuo_timing(*durations: int) -> dict[str, Any]:
    """No timing on these pages: APIXO's general advice for video (2-6 minutes)."""
    return {"poll_first_s": dict.fromkeys(durations, 60.0), "poll_interval_s": 10.0,
            "typical_s": dict.fromkeys(durations, (120, 360)), "result_ttl_s": _DAYS_15}


_HAILUO_IMAGES = ImageRules(formats=("JPEG", "PNG"), max_bytes=20 * 1024 * 1024,
                            min_short_side=301, aspect_exclusive=True)

APIXO_MODELS: tuple[ModelSpec, ...] = (
    _veo("veo-3-1-fast", "fast", "Veo 3.1 Fast (APIXO)", 0.20),
    _veo("veo-3-1", "quality", "Veo 3.1 (APIXO)", 1.50),
    ModelSpec(
        provider="apixo",
        id="wan-2-5-video",
        api_model="wan-2-5-video",
        label="Wan 2.5 (APIXO)",
        shapes=_modes("text-to-video", "image-to-video"),
        durations=(5, 10),
        text_fields={**_WIDE_TALL},
        image_keeps_shape=True,
        input_extra={"resolution": "720p"},
        prompt_max=1_500,
        negative_prompt_max=500,
        seed_field="seed",
        image=ImageRules(max_bytes=20 * 1024 * 1024, min_short_side=240, max_side=8000,
                         alpha=False),
        price=per_second(0.08),  # at 720p (the older page's figure)
        poll_first_s={5: 90.0, 10: 90.0},
        typical_s={5: (100, 250), 10: (100, 250)},
        result_ttl_s=_DAYS_15,
    ),
    ModelSpec(
        provider="apixo",
        id="kling-2-5-turbo-pro",
        api_model="kling-2-5-turbo-pro",
        label="Kling 2.5 Turbo Pro (APIXO)",
        shapes=_modes("text-to-video", "image-to-video", "image-to-video"),
        durations=(5, 10),
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,
        prompt_max=2_500,
        negative_prompt_max=2_500,
        **_kling_hailuo_timing(5, 10),
    ),
    ModelSpec(
        provider="apixo",
        id="kling-2-1",
        api_model="kling-2-1",
        label="Kling 2.1 (APIXO)",
        shapes=_modes("master-text-to-video", "standard-image-to-video", "pro-image-to-video"),
        durations=(5, 10),
        text_fields=_WIDE_TALL,
        image_keeps_shape=True,
        prompt_max=5_000,
        negative_prompt_max=500,
        **_kling_hailuo_timing(5, 10),
    ),
    ModelSpec(
        provider="apixo",
        id="hailuo-2-3",
        api_model="hailuo-2-3",
        label="Hailuo 2.3 (APIXO, 768p)",
        shapes=_modes("standard-text-to-video", "standard-image-to-video"),
        durations=(6, 10),
        orientations=(L,),  # the page names no aspect field
        image_keeps_shape=True,
        prompt_max=2_000,  # the page gives no limit: MiniMax's own
        image=_HAILUO_IMAGES,
        **_kling_hailuo_timing(6, 10),
    ),
    ModelSpec(
        provider="apixo",
        id="hailuo-2-3-pro",
        api_model="hailuo-2-3",
        label="Hailuo 2.3 Pro (APIXO, 1080p)",
        shapes=_modes("pro-text-to-video", "pro-image-to-video"),
        durations=(5,),  # pro modes are always 5 seconds
        duration_field=None,
        orientations=(L,),
        image_keeps_shape=True,
        prompt_max=2_000,
        image=_HAILUO_IMAGES,
        **_kling_hailuo_timing(5),
    ),
    ModelSpec(
        provider="apixo",
        id="sora-2",
        api_model="sora-2",
        label="Sora 2 (APIXO)",
        retired=True,
        shapes=_modes("text-to-video", "image-to-video"),
        text_fields={L: {"aspect_ratio": "landscape"}, P: {"aspect_ratio": "portrait"}},
        image_fields={L: {"aspect_ratio": "landscape"}, P: {"aspect_ratio": "portrait"}},
        input_extra={"remove_watermark": True},
        prompt_max=10_000,
        price=per_second(0.09),
        max_concurrent=10,
        poll_first_s={4: 120.0, 8: 180.0, 12: 180.0},
        poll_interval_s=10.0,
        result_ttl_s=_DAYS_15,
    ),
    ModelSpec(
        provider="apixo",
        id="sora-2-pro",
        api_model="sora-2-pro",
        label="Sora 2 Pro (APIXO)",
        retired=True,
        shapes=_modes("text-to-video", "image-to-video"),
        text_fields={L: {"size": "1280*720"}, P: {"size": "720*1280"}},
        image_fields={L: {"resolution": "720p"}, P: {"resolution": "720p"}},
        body_extra={"provider": "official"},
        prompt_max=10_000,
        requests_per_minute=60,
        max_concurrent=10,
        poll_first_s={4: 120.0, 8: 120.0, 12: 120.0},
        poll_interval_s=5.0,
        typical_s={4: (120, 240), 8: (150, 270), 12: (180, 360)},
        result_ttl_s=_DAYS_15,
    ),
)
