"""The model catalog: every model the bot can use, as data.

Adding a model that a provider serves on the same endpoints is a new ``ModelSpec``
entry (one module per provider: ``apixo``, ``fal``, ``replicate``), not new code: the
adapters read the API model or endpoint, the request shapes, the per-orientation fields,
the extra fields and the price from the spec. One catalog id names the same model at the
same tier at every reseller that sells it (what failover moves a job between). Retired
models (the Sora family) stay listed so an owner may keep one explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.catalog.apixo import APIXO_MODELS
from bot.catalog.fal import FAL_MODELS
from bot.catalog.pricing import Price, micros, money, per_second
from bot.catalog.replicate import REPLICATE_MODELS
from bot.catalog.spec import ImageRules, Mode, ModelSpec, Orientation, Shape

__all__ = [
    "MODELS",
    "PROVIDERS",
    "ImageRules",
    "Mode",
    "ModelSpec",
    "Orientation",
    "Price",
    "Shape",
    "UnknownModel",
    "default_model",
    "equivalent",
    "get_model",
    "live_models",
    "models_for",
    "money",
    "offered_models",
    "request_price",
    "retired_notice",
    "sandbox_like",
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
        price=per_second(0.125),
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
        max_concurrent=10,
        poll_first_s={4: 10.0, 8: 10.0, 12: 10.0},
        poll_interval_s=10.0,
        typical_s=_TYPICAL,
        result_ttl_s=24 * 3600,
    ),
)


def _sandbox(spec: ModelSpec) -> ModelSpec:
    """A free local stand-in of a reseller's model: same options and limits, a test card."""
    return spec.model_copy(update={
        "provider": "sandbox", "api_model": "sandbox-test-card", "default": False,
        "label": f"Sandbox test card shaped like {spec.label.split(' (')[0]}",
        "image": spec.image.model_copy(update={"transport": "data_uri"}),  # fetches nothing
        "price": per_second(0.0), "audio_price": None, "shape_prices": {},
        "requests_per_minute": None,
        "max_concurrent": 4, "poll_first_s": dict.fromkeys(spec.durations, 1.0),
        "poll_interval_s": 1.0, "typical_s": dict.fromkeys(spec.durations, (3, 15)),
        "result_ttl_s": 24 * 3600,
    })


# The sandbox's own test card keeps the 4/8/12 s landscape/portrait options (and the id)
# it always had, so a sandbox install keeps working; it also mirrors every live model of
# one reseller (APIXO's, or fal.ai's or Replicate's with SANDBOX_LIKE), so each request
# shape, length and option of that reseller can be tried for free.
_SANDBOX_CARD = ModelSpec(
    provider="sandbox",
    id="sora-2",
    api_model="sandbox-test-card",
    label="Sandbox test card (free, made locally)",
    default=True,
    prompt_max=10_000,
    image=ImageRules(transport="data_uri"),  # it fetches nothing
    price=per_second(0.0),
    max_concurrent=4,
    poll_first_s={4: 1.0, 8: 1.0, 12: 1.0},
    poll_interval_s=1.0,
    typical_s={4: (3, 10), 8: (3, 15), 12: (3, 20)},
    result_ttl_s=24 * 3600,
)
_SANDBOX_MIRRORS: dict[str, tuple[ModelSpec, ...]] = {
    name: (_SANDBOX_CARD, *(_sandbox(spec) for spec in models if not spec.retired))
    for name, models in (("apixo", APIXO_MODELS), ("fal", FAL_MODELS),
                         ("replicate", REPLICATE_MODELS))
}
SANDBOX_LIKE: tuple[str, ...] = tuple(_SANDBOX_MIRRORS)
_REAL: tuple[ModelSpec, ...] = (*APIXO_MODELS, *FAL_MODELS, *REPLICATE_MODELS, *_RELAY_MODELS)
MODELS: tuple[ModelSpec, ...] = (*_REAL, *_SANDBOX_MIRRORS["apixo"])


def sandbox_like(reseller: str) -> None:
    """Let the sandbox mirror ``reseller``'s live models (SANDBOX_LIKE; APIXO's unless
    set): the settings call this when they are read."""
    global MODELS
    MODELS = (*_REAL, *_SANDBOX_MIRRORS[reseller])


PROVIDERS: tuple[str, ...] = ("apixo", "fal", "replicate", "aivideoapi", "pixazo", "sandbox")


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


def request_price(
    spec: ModelSpec, seconds: int, overrides: Mapping[str, float] | None = None, *,
    shape: Shape = Shape.TEXT, audio: bool = False,
) -> int | None:
    """The list price of one request in micro-dollars, or None when unknown.

    MODEL_PRICES (dollars per second) comes first: ``provider/model+audio`` for a request
    with sound, then ``provider/model``; then the catalog's price for the shape and sound.
    """
    if overrides:
        for key in ((f"{spec.key}+audio", spec.key) if audio else (spec.key,)):
            if key in overrides:
                return micros(Decimal(str(overrides[key])) * seconds)
    price = spec.price_for(shape, audio)
    return None if price is None else price.cost_micros(seconds)
