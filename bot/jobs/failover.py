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

from bot.catalog import ModelSpec, equivalent, price_per_second
from bot.config import Settings
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

    def price(self, spec: ModelSpec) -> float | None:
        return price_per_second(spec, self._settings.model_prices)


def reason(exc: ProviderError) -> str:
    return REASONS.get(exc.code, "cannot take the job")
