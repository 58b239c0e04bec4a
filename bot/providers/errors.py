"""One typed error family for every provider.

Each error carries ``user_message``: a short sentence a chat member can read. It never
contains a key, a URL with credentials or a raw provider body.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every provider failure."""

    code = "provider_error"
    default_message = "The video provider reported a problem."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        # Free text for logs (already scrubbed of secrets by whoever builds it).
        self.detail = detail
        super().__init__(self.user_message if detail is None else f"{self.user_message} ({detail})")


class InvalidRequest(ProviderError):
    code = "invalid_request"
    default_message = "The video provider refused the request as invalid."


class TaskNotFound(InvalidRequest):
    code = "task_not_found"
    default_message = "The video provider does not know this task."


class AuthenticationFailed(ProviderError):
    code = "authentication"
    default_message = "The video provider rejected the API key."


class InsufficientBalance(ProviderError):
    code = "insufficient_balance"
    default_message = "The bot's account with the video provider is out of credit."


class Forbidden(ProviderError):
    code = "forbidden"
    default_message = "The video provider does not allow this key to do that."


class ModelUnavailable(ProviderError):
    code = "model_unavailable"
    default_message = "This model is no longer offered by the video provider."


class RateLimited(ProviderError):
    code = "rate_limited"
    default_message = "The video provider is busy; please try again in a moment."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.retry_after = retry_after


class ProviderDown(ProviderError):
    code = "provider_down"
    default_message = "The video provider is not answering properly right now."


class UpstreamRefused(ProviderDown):
    """The provider answered a create with its documented "upstream refused" error.

    A definite failure: the provider says the request was turned down (and refunds it), so
    no task is running and the job fails at once. A status read that gets it is retried
    like any outage (hence the ProviderDown base).
    """

    code = "upstream_refused"
    default_message = (
        "The video provider's upstream service turned this request down (it may be "
        "overloaded, or it may not accept this prompt or image). Nothing was made; try "
        "again later or reword the prompt."
    )


class EndpointNotFound(ProviderError):
    """A create answered 404 without the provider's documented model-not-found body."""

    code = "endpoint_not_found"
    default_message = (
        "The video provider does not know the address the bot sent this request to; an "
        "admin should check the provider's base URL setting."
    )


class ContentRejected(ProviderError):
    code = "content_rejected"
    default_message = "The video provider refused this prompt under its content rules."


class ImageRejected(ProviderError):
    code = "image_rejected"
    default_message = "The video provider could not use this image."


class TimedOut(ProviderError):
    code = "timed_out"
    default_message = "The video provider took too long to answer."


class SubmitUncertain(ProviderError):
    """A create request may or may not have reached the provider.

    It is never re-sent: a duplicate submit would pay twice.
    """

    code = "submit_uncertain"
    default_message = (
        "The video provider did not confirm the request; to avoid paying twice it was "
        "not sent again."
    )


class WebhookRejected(Exception):
    """A webhook that claims to be signed is not trusted: unsigned, wrongly signed, stale
    or altered. The web server answers it with a 4xx (``status``: 401 for a missing or
    wrong signature, 400 for a stale or malformed one) and nothing changes. ``reason`` is
    short, log-safe text."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class WebhookUnverifiable(Exception):
    """The keys to check a webhook could not be had (network or provider trouble): the web
    server answers 503, so the provider retries later."""


# Terminal failure codes reported in a task's status, with the sentence a member reads.
FAIL_CODE_MESSAGES: dict[str, str] = {
    "promptinvalid": "The provider rejected the prompt. Try rewording it.",
    "sensitivecontent": "The provider's safety check refused this prompt or image.",
    "sensitivecontentdetected": "The provider's safety check flagged this content.",
    "content_violation": "The provider's safety check refused this content.",
    "inputimagesensitivecontentdetected": "The provider's safety check refused the image.",
    "imageformatincorrect": "The provider could not read the image format.",
    "invalidimagesize": "The provider refused the image's size or dimensions.",
    "invalid_image_url": "The provider could not fetch the image.",
    "content_policy_violation": "The provider's safety check refused this prompt or image.",
    "e005": "The provider's safety check flagged this prompt or image.",
    "ratelimited": "The provider was overloaded and gave up. Try again later.",
    "timeout": "The provider did not finish the video in time.",
}


def fail_message(code: str | None, fallback: str | None = None) -> str:
    """A member-readable sentence for a task failure code."""
    if code and code.lower() in FAIL_CODE_MESSAGES:
        return FAIL_CODE_MESSAGES[code.lower()]
    return "The provider could not make this video." if not fallback else _clip(fallback)


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
