"""Provider failover: when PROVIDER cannot take a job, the next provider in
FALLBACK_PROVIDERS that sells the same model (same catalog id, so the same tier, never a
dearer one) gets it.

A job moves only after a create that certainly made nothing: the account is out of credit,
the key or route was refused, the model is gone, or the provider is down (a documented
refusal, or 5xx/timeouts exhausted before anything was accepted). Never after a content
or safety refusal, an invalid prompt or image, or an uncertain create (that could pay
twice). A provider that failed this way is skipped for ``COOL_DOWN_S`` before new jobs
try it first again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from bot.catalog import ModelSpec, Shape, equivalent, money, request_price
from bot.config import Settings
from bot.jobs import files as jobfiles
from bot.providers.errors import (
    AuthenticationFailed,
    EndpointNotFound,
    Forbidden,
    InsufficientBalance,
    ModelUnavailable,
    ProviderDown,
    ProviderError,
    SubmitUncertain,
)
from bot.providers.validation import validate_request
from bot.store import Job, QuotaExceeded

log = logging.getLogger(__name__)

COOL_DOWN_S = 300.0
# What makes a provider unable to take any job now (not something about this request).
CANNOT_TAKE = (InsufficientBalance, AuthenticationFailed, Forbidden, ModelUnavailable,
               ProviderDown, EndpointNotFound)
REASONS = {
    "insufficient_balance": "is out of credit",
    "authentication": "refused the API key",
    "forbidden": "refused the key or route",
    "model_unavailable": "no longer offers this model",
    "provider_down": "is down",
    "upstream_refused": "is down",
    "endpoint_not_found": "could not be reached at its configured address",
}


def moves_on(exc: ProviderError) -> bool:
    """Whether a failed create may move to another provider."""
    return isinstance(exc, CANNOT_TAKE) and not isinstance(exc, SubmitUncertain)


class Failover:
    def __init__(self, settings: Settings, cool_down_s: float = COOL_DOWN_S) -> None:
        self._settings = settings
        self._cool_down_s = cool_down_s
        self._down_until: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._settings.fallback_providers)

    def mark_down(self, provider: str, exc: ProviderError) -> None:
        if not self.enabled:
            return
        self._down_until[provider] = time.monotonic() + self._cool_down_s
        log.warning("provider %s cannot take jobs (%s); skipping it for %.0f s",
                    provider, exc.code, self._cool_down_s)

    def cooling(self, provider: str) -> bool:
        return self._down_until.get(provider, 0.0) > time.monotonic()

    def next_for(self, spec: ModelSpec, tried: list[str]) -> ModelSpec | None:
        """The next provider in the chain with the same model, not yet tried and not
        cooling down; None when there is none."""
        for name in self._settings.provider_chain:
            if name in tried or name == spec.provider or self.cooling(name):
                continue
            other = equivalent(spec, name)
            if other is not None:
                return other
        return None


def reason(exc: ProviderError) -> str:
    return REASONS.get(exc.code, "cannot take the job")


def _options(job: Job) -> dict[str, object]:
    options = job.context.get("options")
    return options if isinstance(options, dict) else {}


def moved_audio(job: Job, spec: ModelSpec, default: bool) -> bool | None:
    """The job's sound choice at ``spec``: kept, or the owner's default where the member
    had no choice before and has one now."""
    asked = _options(job).get("audio")
    if not spec.takes_audio:
        return None
    return asked if isinstance(asked, bool) else default


async def unsuitable(job: Job, spec: ModelSpec) -> str | None:
    """Why ``spec`` cannot make the job exactly as asked (a sentence for the member), or
    None: the length, orientation, images, prompt, extras and sound are checked against
    the other provider's rules, never silently changed."""
    if isinstance(_options(job).get("audio"), bool) and not spec.takes_audio:
        return f"it does not let members choose sound for `{spec.id}`."
    try:
        request = await jobfiles.build_request(job, spec, None, placeholder_urls=True)
        validate_request(spec, request)
    except ProviderError as exc:
        return exc.user_message
    return None


def job_price(job: Job, spec: ModelSpec, audio: bool | None,
              overrides: Mapping[str, float] | None) -> int | None:
    """The job's list price at ``spec`` in micro-dollars (None: unknown)."""
    shape = Shape.TEXT
    if job.image_path:
        shape = Shape.FRAMES if job.context.get("end_image_path") else Shape.IMAGE
    return request_price(spec, spec.length_for(job.duration), overrides, shape=shape,
                         audio=bool(audio))


def over_spend(spec: ModelSpec, exc: QuotaExceeded) -> str:
    """Why a move to ``spec`` does not fit the guild's spend cap (for the member)."""
    if exc.reason == "price_unknown":
        return (f"{spec.provider} publishes no price for `{spec.id}` while this server caps "
                "its spending (an admin can set MODEL_PRICES).")
    who = "your" if exc.reason == "member_spend" else "this server's"
    return (f"`{spec.id}` costs more at {spec.provider} than {who} spend cap allows "
            f"({money(exc.remaining)} left); nothing was made.")
