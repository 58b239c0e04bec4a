"""Turning a member's options into a job: validation, image fitting, quota reservation.

No Discord types here: the cogs pass plain values and render the results.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from typing import Any

from bot.catalog import (
    Mode,
    ModelSpec,
    Orientation,
    UnknownModel,
    get_model,
    models_for,
    price_per_second,
)
from bot.config import Settings
from bot.jobs.service import JobService
from bot.media.images import ImageProblem, check_rules, fit_image, image_orientation, inspect_image
from bot.providers.base import SourceImage
from bot.store import Job, NewJob, Store

# The largest attachment the bot reads at all; bigger images than a provider takes (but
# under this) are re-encoded to fit.
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
NO_SERVER_MESSAGE = "Videos can only be made in a server, not in direct messages."


class Refusal(Exception):
    """Something the member can fix; nothing was charged."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


@dataclass(frozen=True)
class VideoOptions:
    spec: ModelSpec
    prompt: str
    duration: int
    orientation: Orientation | None  # None: the image's own (or landscape)
    mode: Mode


def clean_prompt(prompt: str) -> str:
    text = unicodedata.normalize("NFC", prompt).strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") and ch not in "\n\t"
           for ch in text):
        raise Refusal("Your prompt contains invisible control characters; please retype it.")
    if not text:
        raise Refusal("Please describe the video you want: the prompt is empty.")
    return text


def check_options(
    settings: Settings,
    *,
    prompt: str,
    duration: int | None,
    orientation: str | None,
    model: str | None,
    mode: Mode,
) -> VideoOptions:
    """Validate a member's options against the catalog, before any charge."""
    try:
        spec = get_model(settings.provider, model or settings.model)
    except UnknownModel:
        offered = ", ".join(m.id for m in models_for(settings.provider))
        raise Refusal(f"There is no model called `{model}` here. Try one of: {offered}.") from None
    if mode not in spec.modes:
        raise Refusal(f"`{spec.id}` cannot animate images.")
    text = clean_prompt(prompt)
    if len(text) > spec.prompt_max:
        raise Refusal(
            f"Your prompt is {len(text):,} characters long; `{spec.id}` takes at most "
            f"{spec.prompt_max:,}."
        )
    chosen = duration if duration is not None else spec.durations[0]
    if chosen not in spec.durations:
        allowed = ", ".join(str(d) for d in spec.durations)
        raise Refusal(f"`{spec.id}` makes videos of {allowed} seconds, not {chosen}.")
    picked: Orientation | None = None
    if orientation is not None:
        try:
            picked = Orientation(orientation)
        except ValueError:
            raise Refusal("Orientation must be landscape or portrait.") from None
        if picked not in spec.orientations:
            raise Refusal(f"`{spec.id}` does not make {picked.value} videos.")
    return VideoOptions(spec, text, chosen, picked, mode)


def check_attachment(size: int) -> None:
    """Cheap checks on an attachment before reading it (the bytes decide later)."""
    if size <= 0:
        raise Refusal("That attachment is empty.")
    if size > MAX_ATTACHMENT_BYTES:
        raise Refusal(
            f"That image is {size / 1024 / 1024:.1f} MB; the bot reads images up to "
            f"{MAX_ATTACHMENT_BYTES // 1024 // 1024} MB."
        )


async def prepare_image(
    data: bytes, options: VideoOptions, *, original_url: str | None = None
) -> tuple[SourceImage, Orientation]:
    """Decode, check and fit the image to the model's rules (in a worker thread).

    ``original_url`` (a fresh attachment URL) is used as the image's URL when the fitted
    image is byte for byte the original; otherwise the job service hosts the new file.
    """

    def work() -> tuple[SourceImage, Orientation]:
        info = inspect_image(data, max_input_bytes=MAX_ATTACHMENT_BYTES)
        check_rules(info, options.spec.image)
        orientation = options.orientation or image_orientation(info)
        fitted = fit_image(data, options.spec.image, orientation)
        return fitted.to_source(None if fitted.changed else original_url), orientation

    try:
        return await asyncio.to_thread(work)
    except ImageProblem as exc:
        raise Refusal(exc.user_message) from None


async def start_job(
    jobs: JobService,
    store: Store,
    settings: Settings,
    options: VideoOptions,
    *,
    guild_id: int | None,
    channel_id: int,
    user_id: int,
    context: dict[str, Any],
    image: SourceImage | None = None,
    orientation: Orientation | None = None,
) -> Job:
    """Reserve the seconds and start the job. Raises QuotaExceeded (nothing written),
    or Refusal outside a server (the quota and the server's rules need one)."""
    if guild_id is None:
        raise Refusal(NO_SERVER_MESSAGE)
    quota = await store.get_quota(guild_id, settings.default_quota_seconds)
    new = NewJob(
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        provider=options.spec.provider,
        model=options.spec.id,
        mode=options.mode.value,
        prompt=options.prompt,
        duration=options.duration,
        orientation=(orientation or options.orientation or Orientation.LANDSCAPE).value,
        seconds=options.duration,
        price_per_second=price_per_second(options.spec, settings.model_prices),
        context=context,
    )
    return await jobs.request(new, quota, image)
