"""The model catalog: every model the bot can use, as data.

Adding a model that a provider serves on the same endpoints is a new ``ModelSpec``
entry here, not new code: the adapters read the API model name, the per-orientation
request fields and the extra body fields from the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Mode(StrEnum):
    TEXT = "text-to-video"
    IMAGE = "image-to-video"


class Orientation(StrEnum):
    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"


class ImageRules(BaseModel):
    """What a provider accepts as the source image of an image-to-video job."""

    model_config = ConfigDict(frozen=True)

    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    max_bytes: int = 10 * 1024 * 1024
    min_short_side: int = 300
    min_aspect: float = 2 / 5
    max_aspect: float = 5 / 2
    # When set, the image must be exactly one of these (width, height) sizes.
    exact_sizes: tuple[tuple[int, int], ...] | None = None
    # "url": the provider fetches the image from a URL; "data_uri": it is inlined.
    transport: Literal["url", "data_uri"] = "url"


class ModelSpec(BaseModel):
    """One model of one provider."""

    model_config = ConfigDict(frozen=True)

    provider: str
    id: str  # catalog id, what members pick and MODEL names
    api_model: str  # the name the provider's API wants
    label: str
    modes: tuple[Mode, ...] = (Mode.TEXT, Mode.IMAGE)
    durations: tuple[int, ...] = (4, 8, 12)
    orientations: tuple[Orientation, ...] = (Orientation.LANDSCAPE, Orientation.PORTRAIT)
    # Request fields that express the orientation, per mode, exactly as the API wants them.
    text_fields: Mapping[Orientation, Mapping[str, Any]] = Field(default_factory=dict)
    image_fields: Mapping[Orientation, Mapping[str, Any]] = Field(default_factory=dict)
    # Fixed fields: top level of the body, and inside the input object (APIXO).
    body_extra: Mapping[str, Any] = Field(default_factory=dict)
    input_extra: Mapping[str, Any] = Field(default_factory=dict)
    prompt_max: int = 10_000
    image: ImageRules = ImageRules()
    # US dollars per second of video; None when the provider publishes no figure
    # (then MODEL_PRICES in the settings supplies one, or the cost shows as unknown).
    price_per_second: float | None = None
    requests_per_minute: int | None = None
    max_concurrent: int = 10
    # The provider's polling advice: first check after N s (per duration), then every M s.
    poll_first_s: Mapping[int, float] = Field(default_factory=dict)
    poll_interval_s: float = 10.0
    # Usual generation time in seconds (low, high) per duration, shown to members.
    typical_s: Mapping[int, tuple[int, int]] = Field(
        default_factory=lambda: {4: (120, 240), 8: (180, 300), 12: (240, 360)}
    )
    result_ttl_s: int = 24 * 3600

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    def first_poll_after(self, duration: int) -> float:
        return self.poll_first_s.get(duration, min(self.poll_first_s.values(), default=10.0))

    def fields_for(self, mode: Mode, orientation: Orientation) -> dict[str, Any]:
        table = self.text_fields if mode is Mode.TEXT else self.image_fields
        return dict(table.get(orientation, {}))


_APIXO_POLL = {4: 120.0, 8: 180.0, 12: 180.0}
_TYPICAL = {4: (120, 240), 8: (180, 300), 12: (240, 360)}
_PIXAZO_SIZES = ((1280, 720), (720, 1280), (1792, 1024), (1024, 1792))

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        provider="apixo",
        id="sora-2",
        api_model="sora-2",
        label="Sora 2 (APIXO)",
        text_fields={
            Orientation.LANDSCAPE: {"aspect_ratio": "landscape"},
            Orientation.PORTRAIT: {"aspect_ratio": "portrait"},
        },
        image_fields={
            Orientation.LANDSCAPE: {"aspect_ratio": "landscape"},
            Orientation.PORTRAIT: {"aspect_ratio": "portrait"},
        },
        input_extra={"remove_watermark": True},
        prompt_max=10_000,
        price_per_second=0.09,
        max_concurrent=10,
        poll_first_s=_APIXO_POLL,
        poll_interval_s=10.0,
        typical_s=_TYPICAL,
        result_ttl_s=15 * 24 * 3600,
    ),
    ModelSpec(
        provider="apixo",
        id="sora-2-pro",
        api_model="sora-2-pro",
        label="Sora 2 Pro (APIXO)",
        text_fields={
            Orientation.LANDSCAPE: {"size": "1280*720"},
            Orientation.PORTRAIT: {"size": "720*1280"},
        },
        image_fields={
            Orientation.LANDSCAPE: {"resolution": "720p"},
            Orientation.PORTRAIT: {"resolution": "720p"},
        },
        body_extra={"provider": "official"},
        prompt_max=10_000,
        price_per_second=None,
        requests_per_minute=60,
        max_concurrent=10,
        poll_first_s={4: 120.0, 8: 120.0, 12: 120.0},
        poll_interval_s=5.0,
        typical_s={4: (120, 240), 8: (150, 270), 12: (180, 360)},
        result_ttl_s=15 * 24 * 3600,
    ),
    ModelSpec(
        provider="aivideoapi",
        id="sora-2",
        api_model="sora-2",
        label="Sora 2 (aivideoapi.ai)",
        text_fields={
            Orientation.LANDSCAPE: {"aspect_ratio": "16:9"},
            Orientation.PORTRAIT: {"aspect_ratio": "9:16"},
        },
        image_fields={
            Orientation.LANDSCAPE: {"aspect_ratio": "16:9"},
            Orientation.PORTRAIT: {"aspect_ratio": "9:16"},
        },
        prompt_max=5_000,
        price_per_second=0.125,
        max_concurrent=10,
        poll_first_s={4: 60.0, 8: 90.0, 12: 120.0},
        poll_interval_s=10.0,
        typical_s=_TYPICAL,
        result_ttl_s=24 * 3600,
    ),
    ModelSpec(
        provider="pixazo",
        id="sora-2-pro",
        api_model="sora-2-pro",
        label="Sora 2 Pro (Pixazo)",
        text_fields={
            Orientation.LANDSCAPE: {"size": "1280x720"},
            Orientation.PORTRAIT: {"size": "720x1280"},
        },
        image_fields={
            Orientation.LANDSCAPE: {"size": "1280x720"},
            Orientation.PORTRAIT: {"size": "720x1280"},
        },
        prompt_max=10_000,
        image=ImageRules(exact_sizes=_PIXAZO_SIZES, transport="data_uri"),
        price_per_second=None,
        max_concurrent=10,
        poll_first_s={4: 10.0, 8: 10.0, 12: 10.0},
        poll_interval_s=10.0,
        typical_s=_TYPICAL,
        result_ttl_s=24 * 3600,
    ),
    ModelSpec(
        provider="sandbox",
        id="sora-2",
        api_model="sandbox-test-card",
        label="Sandbox test card (free, made locally)",
        prompt_max=10_000,
        image=ImageRules(transport="data_uri"),  # it fetches nothing
        price_per_second=0.0,
        max_concurrent=4,
        poll_first_s={4: 1.0, 8: 1.0, 12: 1.0},
        poll_interval_s=1.0,
        typical_s={4: (3, 10), 8: (3, 15), 12: (3, 20)},
        result_ttl_s=24 * 3600,
    ),
)

PROVIDERS: tuple[str, ...] = ("apixo", "aivideoapi", "pixazo", "sandbox")


class UnknownModel(LookupError):
    """The catalog has no such model for that provider."""

    def __init__(self, provider: str, model: str) -> None:
        offered = ", ".join(m.id for m in models_for(provider)) or "none"
        super().__init__(
            f"model '{model}' is not offered by provider {provider}; offered: {offered}"
        )


def models_for(provider: str) -> list[ModelSpec]:
    return [m for m in MODELS if m.provider == provider]


def get_model(provider: str, model: str) -> ModelSpec:
    for spec in MODELS:
        if spec.provider == provider and spec.id == model:
            return spec
    raise UnknownModel(provider, model)


def price_per_second(spec: ModelSpec, overrides: Mapping[str, float] | None = None) -> float | None:
    """The price per second of video: MODEL_PRICES first, then the catalog's figure."""
    if overrides and spec.key in overrides:
        return overrides[spec.key]
    return spec.price_per_second


def estimate_cost(
    spec: ModelSpec, seconds: int, overrides: Mapping[str, float] | None = None
) -> float | None:
    price = price_per_second(spec, overrides)
    return None if price is None else round(price * seconds, 4)
