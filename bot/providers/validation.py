"""Checking a generation request against its catalog entry, before any HTTP.

``validate_request`` raises ``InvalidRequest`` whose ``user_message`` a chat member can
read and act on. The adapters call it first thing in ``submit``; the cogs may call it
earlier to refuse a bad request before reserving quota.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.catalog import ImageRules, Mode, ModelSpec, Shape
from bot.providers.base import GenerationRequest, SourceImage
from bot.providers.errors import InvalidRequest

_MIME_FORMATS = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG",
                 "image/webp": "WEBP"}
_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def validate_request(spec: ModelSpec, request: GenerationRequest) -> None:
    """Raise InvalidRequest (member-readable) unless ``request`` suits ``spec``."""
    prompt = request.prompt.strip()
    if not prompt:
        raise InvalidRequest("The prompt is empty: describe the video you want.")
    if len(prompt) > spec.prompt_max:
        raise InvalidRequest(
            f"The prompt is {len(prompt):,} characters long; {spec.label} takes at most "
            f"{spec.prompt_max:,}."
        )
    if request.mode not in spec.modes:
        what = "from an image" if request.mode is Mode.IMAGE else "from a prompt alone"
        raise InvalidRequest(f"{spec.label} cannot make videos {what}.")
    if request.shape is Shape.FRAMES and not spec.takes_end_frame:
        raise InvalidRequest(f"{spec.label} takes no end frame: leave the end image out.")
    if request.audio is not None and not spec.takes_audio:
        raise InvalidRequest(f"{spec.label} does not let you choose sound: leave it out.")
    if request.duration not in spec.durations:
        raise InvalidRequest(
            f"{spec.label} makes {spec.describe_lengths()}, not {request.duration}."
        )
    allowed_orientations = spec.orientations_for(request.mode)
    if allowed_orientations and request.orientation not in allowed_orientations:
        allowed = _either([o.value for o in allowed_orientations])
        raise InvalidRequest(
            f"{spec.label} does not make {request.orientation.value} videos (only {allowed})."
        )
    validate_extras(spec, request.negative_prompt, request.seed)
    for image in (request.image, request.end_image):
        if image is not None:
            validate_image(spec.image, image)


def validate_extras(spec: ModelSpec, negative_prompt: str | None, seed: int | None) -> None:
    """A negative prompt and a seed: refused clearly where the model takes none."""
    if negative_prompt is not None and negative_prompt.strip():
        if spec.negative_prompt_max is None:
            raise InvalidRequest(f"{spec.label} takes no negative prompt: leave it out.")
        if len(negative_prompt.strip()) > spec.negative_prompt_max:
            raise InvalidRequest(
                f"The negative prompt is {len(negative_prompt.strip()):,} characters long; "
                f"{spec.label} takes at most {spec.negative_prompt_max:,}."
            )
    if seed is not None:
        if spec.seed_field is None:
            raise InvalidRequest(f"{spec.label} takes no seed: leave it out.")
        if not 0 <= seed <= spec.seed_max:
            raise InvalidRequest(f"The seed must be a whole number from 0 to {spec.seed_max}.")


def validate_image(rules: ImageRules, image: SourceImage) -> None:
    """The last guard on a fitted image; media.py should already have made it fit."""
    fmt = _MIME_FORMATS.get(image.mime.lower())
    if fmt is None or fmt not in rules.formats:
        names = _either([_FORMAT_NAMES.get(f, f) for f in rules.formats])
        raise InvalidRequest(f"The image must be {names}.")
    if len(image.data) > rules.max_bytes:
        raise InvalidRequest(
            f"The image is too large ({_mb(len(image.data))}; the limit is "
            f"{_mb(rules.max_bytes)})."
        )
    width, height = image.width, image.height
    if width <= 0 or height <= 0:
        raise InvalidRequest("The image has no usable size.")
    if min(width, height) < rules.min_short_side:
        raise InvalidRequest(
            f"The image is too small ({width}×{height}); its shorter side must be at least "
            f"{rules.min_short_side} px."
        )
    aspect = width / height
    slack = -1e-9 if rules.aspect_exclusive else 1e-9
    if aspect < rules.min_aspect - slack or aspect > rules.max_aspect + slack:
        raise InvalidRequest(
            f"The image is too {'tall' if aspect < 1 else 'wide'} ({width}×{height}); "
            "crop it closer to a regular photo shape."
        )
    if rules.max_side is not None and max(width, height) > rules.max_side:
        raise InvalidRequest(
            f"The image is too large ({width}×{height}); its longer side must be at most "
            f"{rules.max_side} px."
        )
    if rules.exact_sizes is not None and (width, height) not in rules.exact_sizes:
        sizes = _either([f"{w}×{h}" for w, h in rules.exact_sizes])
        raise InvalidRequest(f"The image must be exactly {sizes} pixels, not {width}×{height}.")
    if rules.transport == "url":
        parts = urlsplit(image.url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequest(
                "The image could not be handed to the video provider (it needs a web link "
                "to the image).",
                detail="image-to-video without an http(s) image URL",
            )
