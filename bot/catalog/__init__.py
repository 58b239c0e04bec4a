"""The model catalog: every model the bot can use, as data.

Adding a model that a provider serves on the same endpoints is a new ``ModelSpec``
entry (``bot/catalog/apixo.py`` for APIXO), not new code: the adapters read the API model
name, the request shapes, the per-orientation fields and the extra fields from the spec.
Retired models (the Sora family) stay listed so an owner may keep one explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.catalog.apixo import APIXO_MODELS
from bot.catalog.spec import ImageRules, Mode, ModelSpec, Orientation, Shape

__all__ = [
    "MODELS",
    "PROVIDERS",
    "ImageRules",
    "Mode",
    "ModelSpec",
    "Orientation",
    "Shape",
    "UnknownModel",
    "default_model",
    "equivalent",
    "estimate_cost",
    "get_model",
    "live_models",
    "models_for",
    "offered_models",
    "price_per_second",
    "retired_notice",
]

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT
_TYPICAL = {4: (120, 240), 8: (180, 300), 12: (240, 360)}
_PIXAZO_SIZES = ((1280, 720), (720, 1280), (1792, 1024), (1024, 1792))

# aivideoapi.ai and Pixazo: only their Sora pages are in hand (seeds 002, 003).
_RELAY_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        provider="aivideoapi",
        id="sora-2",
        api_model="sora-2",
        label="Sora 2 (aivideoapi.ai)",
        retired=True,
        text_fields={L: {"aspect_ratio": "16:9"}, P: {"aspect_ratio": "9:16"}},
        image_fields={L: {"aspect_ratio": "16:9"}, P: {"aspect_ratio": "9:16"}},
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
        retired=True,
        text_fields={L: {"size": "1280x720"}, P: {"size": "720x1280"}},
        image_fields={L: {"size": "1280x720"}, P: {"size": "720x1280"}},
        prompt_max=10_000,
        image=ImageRules(exact_sizes=_PIXAZO_SIZES, transport="data_uri"),
        price_per_second=None,
        max_concurrent=10,
        poll_first_s={4: 10.0, 8: 10.0, 12: 10.0},
        poll_interval_s=10.0,
        typical_s=_TYPICAL,
        result_ttl_s=24 * 3600,
    ),
)


def _sandbox(spec: ModelSpec) -> ModelSpec:
    """A free local stand-in of an APIXO model: same options and limits, a test card."""
    return spec.model_copy(update={
        "provider": "sandbox", "api_model": "sandbox-test-card", "default": False,
        "label": f"Sandbox test card shaped like {spec.label.split(' (')[0]}",
        "image": spec.image.model_copy(update={"transport": "data_uri"}),  # fetches nothing
        "price_per_second": 0.0, "price_per_video": None, "requests_per_minute": None,
        "max_concurrent": 4, "poll_first_s": dict.fromkeys(spec.durations, 1.0),
        "poll_interval_s": 1.0, "typical_s": dict.fromkeys(spec.durations, (3, 15)),
        "result_ttl_s": 24 * 3600,
    })


# The sandbox's own test card keeps the 4/8/12 s landscape/portrait options (and the id)
# it always had, so a sandbox install keeps working; it also mirrors every live APIXO
# model, so each request shape can be tried for free.
_SANDBOX_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        provider="sandbox",
        id="sora-2",
        api_model="sandbox-test-card",
        label="Sandbox test card (free, made locally)",
        default=True,
        prompt_max=10_000,
        image=ImageRules(transport="data_uri"),  # it fetches nothing
        price_per_second=0.0,
        max_concurrent=4,
        poll_first_s={4: 1.0, 8: 1.0, 12: 1.0},
        poll_interval_s=1.0,
        typical_s={4: (3, 10), 8: (3, 15), 12: (3, 20)},
        result_ttl_s=24 * 3600,
    ),
    *(_sandbox(spec) for spec in APIXO_MODELS if not spec.retired),
)

MODELS: tuple[ModelSpec, ...] = (*APIXO_MODELS, *_RELAY_MODELS, *_SANDBOX_MODELS)

PROVIDERS: tuple[str, ...] = ("apixo", "aivideoapi", "pixazo", "sandbox")


class UnknownModel(LookupError):
    """The catalog has no such model for that provider."""

    def __init__(self, provider: str, model: str) -> None:
        offered = ", ".join(m.id for m in live_models(provider)) or "none"
        super().__init__(
            f"model '{model}' is not offered by provider {provider}; offered: {offered}"
        )


def equivalent(spec: ModelSpec, provider: str) -> ModelSpec | None:
    """The same model at the same tier on another provider (same catalog id), if that
    provider sells it: what a job may move to when its provider cannot take it."""
    for other in MODELS:
        if other.provider == provider and other.id == spec.id and provider != "sandbox":
            return other
    return None


def models_for(provider: str) -> list[ModelSpec]:
    """Every catalog entry of ``provider``, retired ones included."""
    return [m for m in MODELS if m.provider == provider]


def live_models(provider: str) -> list[ModelSpec]:
    """The provider's models that are not retired."""
    return [m for m in MODELS if m.provider == provider and not m.retired]


def offered_models(provider: str, configured: str | None = None) -> list[ModelSpec]:
    """What members may pick: the live models, plus the owner's configured model even
    when it is retired (setting MODEL to it keeps it)."""
    return [m for m in models_for(provider) if not m.retired or m.id == configured]


def default_model(provider: str) -> ModelSpec | None:
    """The model used when MODEL is unset; None when the provider has no live model."""
    live = live_models(provider)
    return next((m for m in live if m.default), live[0] if live else None)


def get_model(provider: str, model: str) -> ModelSpec:
    for spec in MODELS:
        if spec.provider == provider and spec.id == model:
            return spec
    raise UnknownModel(provider, model)


def retired_notice(provider: str, model: str) -> str | None:
    """One warning line when ``model`` is retired, else None (owners see it at start-up
    and in ``python -m bot check``)."""
    try:
        spec = get_model(provider, model)
    except UnknownModel:
        return None
    if not spec.retired:
        return None
    live = ", ".join(m.id for m in live_models(provider))
    if not live:
        return (
            f"provider {provider} has no live model: its only catalog model, {model}, is a "
            f"retired Sora model; the bot uses it, and members get refunds if {provider} no "
            "longer serves it. Set MODEL explicitly to keep it, or use PROVIDER=apixo"
        )
    return (
        f"MODEL is set to {model}, a retired model; members get refunds if {provider} no longer "
        f"serves it. Live models: {live}"
    )


def price_per_second(spec: ModelSpec, overrides: Mapping[str, float] | None = None) -> float | None:
    """The price per second of video: MODEL_PRICES first, then the catalog's figure (a
    per-video price is spread over the model's fixed length)."""
    if overrides and spec.key in overrides:
        return overrides[spec.key]
    if spec.price_per_second is None and spec.price_per_video is not None:
        return round(spec.price_per_video / spec.durations[0], 6)
    return spec.price_per_second


def estimate_cost(
    spec: ModelSpec, seconds: int, overrides: Mapping[str, float] | None = None
) -> float | None:
    price = price_per_second(spec, overrides)
    return None if price is None else round(price * seconds, 4)
