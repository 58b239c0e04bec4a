"""Checking a generation request against its catalog entry, before any HTTP.

``validate_request`` raises ``InvalidRequest`` whose ``user_message`` a chat member can
read and act on. The adapters call it first thing in ``submit``; the cogs may call it
earlier to refuse a bad request before reserving quota.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.catalog import ImageRules, Mode, ModelSpec
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
    if request.duration not in spec.durations:
        allowed = _either([str(d) for d in sorted(spec.durations)])
        raise InvalidRequest(
            f"{spec.label} makes videos of {allowed} seconds, not {request.duration}."
        )
    if request.orientation not in spec.orientations:
        allowed = _either([o.value for o in spec.orientations])
        raise InvalidRequest(
            f"{spec.label} does not make {request.orientation.value} videos (only {allowed})."
        )
    if request.image is not None:
        validate_image(spec.image, request.image)


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
    if aspect < rules.min_aspect - 1e-9 or aspect > rules.max_aspect + 1e-9:
        raise InvalidRequest(
            f"The image is too {'tall' if aspect < 1 else 'wide'} ({width}×{height}); "
            "crop it closer to a regular photo shape."
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
