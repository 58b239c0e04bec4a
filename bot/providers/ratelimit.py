"""Each provider's documented request rate, enforced per provider and model.

The catalog's ``requests_per_minute`` (APIXO documents 60 a minute for sora-2-pro, seed
001) becomes one ``aiolimiter.AsyncLimiter`` per provider model. Every HTTP attempt to that
model's endpoints (creates, status polls and their retries alike) waits for it first; see
``http.py``. The limiter lets one request through every ``60 / requests_per_minute``
seconds with no burst, so no minute ever sees more than the documented number. Models
without a documented rate are not limited here (429s are still retried with backoff).

The limit holds within one process; the adapters are built once per process and provider.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

from bot.catalog import ModelSpec


class RequestRates:
    """The request-rate limiters of one adapter, one per provider model."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, str], tuple[int, AsyncLimiter]] = {}

    def for_model(self, spec: ModelSpec | None) -> AsyncLimiter | None:
        """The limiter for ``spec``'s API model, or None when no rate is documented."""
        if spec is None or not spec.requests_per_minute:
            return None
        # Keyed by the API's model name: catalog entries that share one share its budget.
        key = (spec.provider, spec.api_model)
        rate = spec.requests_per_minute
        held = self._limiters.get(key)
        if held is None or rate < held[0]:  # the stricter documented rate wins
            held = (rate, AsyncLimiter(1, 60.0 / rate))
            self._limiters[key] = held
        return held[1]
