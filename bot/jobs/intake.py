"""Turning a member's options into a job: validation, image fitting, quota reservation.

No Discord types here: the cogs pass plain values and render the results.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.catalog import (
    Mode,
    ModelSpec,
    Orientation,
    Shape,
    UnknownModel,
    get_model,
    offered_models,
    request_price,
)
from bot.config import Settings
from bot.errors import Refusal as Refusal  # re-exported: the cogs catch it from here
from bot.jobs.service import JobService
from bot.media.images import ImageProblem, check_rules, fit_image, image_orientation, inspect_image
from bot.providers.base import SourceImage
from bot.store import GuildQuota, Job, NewJob, Store

# The largest attachment the bot reads at all; bigger images than a provider takes (but
# under this) are re-encoded to fit.
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
NO_SERVER_MESSAGE = "Videos can only be made in a server, not in direct messages."


@dataclass(frozen=True)
class VideoOptions:
    spec: ModelSpec
    prompt: str
    duration: int
    orientation: Orientation | None  # None: the image's own (or landscape)
    mode: Mode
    end_frame: bool = False  # an end image comes with the start image
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None  # sound on or off; None where the model gives no choice

    @property
    def shape(self) -> Shape:
        if self.mode is Mode.TEXT:
            return Shape.TEXT
        return Shape.FRAMES if self.end_frame else Shape.IMAGE

    def price(self, overrides: Mapping[str, float] | None = None) -> int | None:
        """The list price in micro-dollars (None: unknown)."""
        return request_price(self.spec, self.duration, overrides, shape=self.shape,
                             audio=bool(self.audio))


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
    end_frame: bool = False,
    negative_prompt: str | None = None,
    seed: int | None = None,
    audio: bool | None = None,
) -> VideoOptions:
    """Validate a member's options against the catalog, before any charge: what the
    model does not take is refused, never silently dropped."""
    try:
        spec = get_model(settings.provider, model or settings.model)
    except UnknownModel:
        raise Refusal(f"There is no model called `{model}` here. {_try_one(settings)}") from None
    if spec.retired and spec.id != settings.model:  # an owner's explicit MODEL keeps it
        raise Refusal(f"`{spec.id}` is retired and no longer offered here. {_try_one(settings)}")
    if mode not in spec.modes:
        raise Refusal(f"`{spec.id}` cannot animate images.")
    text = clean_prompt(prompt)
    if len(text) > spec.prompt_max:
        raise Refusal(
            f"Your prompt is {len(text):,} characters long; `{spec.id}` takes at most "
            f"{spec.prompt_max:,}."
        )
    if duration is not None and duration not in spec.durations:
        if spec.fixed_length is not None:
            raise Refusal(f"`{spec.id}` makes {spec.describe_lengths()}: leave the length out.")
        raise Refusal(f"`{spec.id}` makes {spec.describe_lengths()}, not {duration}.")
    chosen = spec.length_for(duration)  # the seconds made, and charged
    picked: Orientation | None = None
    if orientation is not None:
        try:
            picked = Orientation(orientation)
        except ValueError:
            raise Refusal("Orientation must be landscape or portrait.") from None
        offered = spec.orientations_for(mode)
        if mode is Mode.IMAGE and not offered:
            raise Refusal(f"`{spec.id}` keeps the image's own shape: leave the orientation out.")
        if picked not in offered:
            allowed = " or ".join(o.value for o in offered)
            raise Refusal(f"`{spec.id}` does not make {picked.value} videos (only {allowed}).")
    extras = _extras(spec, end_frame, negative_prompt, seed)
    return VideoOptions(spec, text, chosen, picked, mode, end_frame, *extras,
                        audio=_audio(spec, audio, settings.audio_default))


def _audio(spec: ModelSpec, asked: bool | None, default: bool) -> bool | None:
    """Sound on or off where the model's reseller lets members choose (else None)."""
    if not spec.takes_audio:
        if asked is not None:
            raise Refusal(f"`{spec.id}` on {spec.provider} does not let you choose sound: "
                          f"leave `audio` out, or pick {_those_that(spec, 'takes_audio')}.")
        return None
    return default if asked is None else asked


def _extras(
    spec: ModelSpec, end_frame: bool, negative_prompt: str | None, seed: int | None
) -> tuple[str | None, int | None]:
    if end_frame and not spec.takes_end_frame:
        raise Refusal(f"`{spec.id}` takes no end frame: leave `end_image` out, or pick "
                      f"{_those_that(spec, 'takes_end_frame')}.")
    negative = clean_prompt(negative_prompt) if negative_prompt and negative_prompt.strip() \
        else None
    if negative is not None:
        if spec.negative_prompt_max is None:
            raise Refusal(f"`{spec.id}` takes no negative prompt: leave it out, or pick "
                          f"{_those_that(spec, 'takes_negative_prompt')}.")
        if len(negative) > spec.negative_prompt_max:
            raise Refusal(f"Your negative prompt is {len(negative):,} characters long; "
                          f"`{spec.id}` takes at most {spec.negative_prompt_max:,}.")
    if seed is not None:
        if spec.seed_field is None:
            raise Refusal(f"`{spec.id}` takes no seed: leave it out, or pick "
                          f"{_those_that(spec, 'takes_seed')}.")
        if not 0 <= seed <= spec.seed_max:
            raise Refusal(f"The seed must be a whole number from 0 to {spec.seed_max}.")
    return negative, seed


def _those_that(spec: ModelSpec, ability: str) -> str:
    able = [f"`{m.id}`" for m in offered_models(spec.provider) if getattr(m, ability)]
    return "a model that does (" + ", ".join(able) + ")" if able else "another model"


def _try_one(settings: Settings) -> str:
    offered = ", ".join(f"`{m.id}`" for m in offered_models(settings.provider, settings.model))
    return f"Try one of: {offered}."


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
    end_image: SourceImage | None = None,
) -> Job:
    """Reserve the seconds and start the job. Raises QuotaExceeded (nothing written),
    or Refusal outside a server (the quota and the server's rules need one)."""
    if guild_id is None:
        raise Refusal(NO_SERVER_MESSAGE)
    # The guild's quota is read inside the reservation's own transaction.
    quota = GuildQuota(settings.default_quota_seconds)
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
        seconds=options.spec.length_for(options.duration),
        price_micros=options.price(settings.model_prices),
        context={**context, "options": {"negative_prompt": options.negative_prompt,
                                        "seed": options.seed, "audio": options.audio}},
    )
    return await jobs.request(new, quota, image, end_image)
