"""Source images for image-to-video: decode-based checks and fitting, with Pillow.

Nothing here trusts a file name or a declared content type: an image is what Pillow
decodes. Pixel counts are checked from the header before any pixel is decoded, so a
small file that would expand to gigabytes (a decompression bomb) is refused cheaply.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from bot.catalog import ImageRules, Orientation
from bot.providers.base import SourceImage

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported by the functions that decode or encode a picture, not with this
# module: most of the bot's work never touches an image, and Pillow costs ~2.5 MB resident.

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000
DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024
_MB = 1024 * 1024
_NOT_IMAGE = "That file is not a JPEG, PNG or WebP image."
_DAMAGED = "The image file is damaged or incomplete, so it cannot be read."
# Magic numbers of formats we refuse, for a clearer message than "not an image".
_OTHER_FORMATS = {
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
    b"8BPS": "PSD",
}


class ImageProblem(Exception):
    """An image the bot cannot use; ``user_message`` is a sentence for a chat member."""

    def __init__(self, user_message: str) -> None:
        self.user_message = user_message
        super().__init__(user_message)


@dataclass(frozen=True)
class ImageInfo:
    format: str  # JPEG, PNG or WEBP
    width: int  # as displayed, i.e. after the EXIF orientation is applied
    height: int
    mime: str
    n_frames: int
    mode: str


@dataclass(frozen=True)
class FittedImage:
    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    # False when ``data`` is the member's original file, untouched (so the original
    # attachment URL still serves exactly these bytes).
    changed: bool = True

    def to_source(self, url: str | None = None) -> SourceImage:
        return SourceImage(
            data=self.data, mime=self.mime, width=self.width, height=self.height, url=url
        )


def inspect_image(data: bytes, *, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> ImageInfo:
    """Decode ``data`` fully and describe it; raise ImageProblem if it is unusable."""
    im = _open(data, max_input_bytes)
    with im:
        _load(im)
        width, height = _displayed_size(im)
        return ImageInfo(
            format="JPEG" if im.format == "MPO" else str(im.format),
            width=width,
            height=height,
            mime=MIME["JPEG" if im.format == "MPO" else str(im.format)],
            n_frames=1 if im.format == "MPO" else getattr(im, "n_frames", 1),
            mode=im.mode,
        )


def check_rules(info: ImageInfo, rules: ImageRules) -> None:
    """Shortest side and aspect ratio (the strictest provider's rules apply to all)."""
    short = min(info.width, info.height)
    if short < rules.min_short_side:
        raise ImageProblem(
            f"The image is too small: its shortest side is {short} px; "
            f"it needs at least {rules.min_short_side} px."
        )
    aspect = info.width / info.height
    if not rules.min_aspect - 1e-9 <= aspect <= rules.max_aspect + 1e-9:
        raise ImageProblem(
            "The image is too narrow or tall: the aspect ratio must be between "
            f"{_ratio(rules.min_aspect)} and {_ratio(rules.max_aspect)} "
            f"(this one is {info.width}×{info.height})."
        )


def image_orientation(info: ImageInfo | FittedImage) -> Orientation:
    return Orientation.LANDSCAPE if info.width >= info.height else Orientation.PORTRAIT


def fit_image(
    data: bytes,
    rules: ImageRules,
    orientation: Orientation | None = None,
    *,
    size: tuple[int, int] | None = None,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> FittedImage:
    """Make ``data`` acceptable under ``rules``.

    With ``rules.exact_sizes`` the picture is centre-cropped and resized to one of them:
    ``size`` when given (pass the size the request will name), else the size of the
    wanted orientation (default: the image's own) closest in aspect, the smaller one
    when aspects are within 5% (1280x720 rather than 1792x1024: the size the catalog's
    request fields name). Otherwise the original bytes are kept when they already fit
    (format, bytes, longest side, alpha, aspect); else the image is flattened if the model
    takes no transparency, nudged inside an exclusive aspect range, scaled down to
    ``max_side`` and re-encoded (JPEG, lower quality, then smaller) to fit ``max_bytes``.
    """
    from PIL import Image, ImageOps

    im = _open(data, max_input_bytes)
    with im:
        _load(im)
        source_format = im.format
        rotated = _exif_orientation(im) not in (None, 1)
        width, height = im.size
        if (
            not rules.exact_sizes
            and source_format in rules.formats
            and source_format in MIME
            and len(data) <= rules.max_bytes
            and not rotated
            and im.mode in (("RGB", "RGBA", "L") if rules.alpha else ("RGB", "L"))
            and (rules.alpha or "transparency" not in im.info)
            and (rules.max_side is None or max(width, height) <= rules.max_side)
            and _inside_aspect((width, height), rules) == (width, height)
        ):
            return FittedImage(data, MIME[source_format], width, height, changed=False)
        picture, alpha = _normalize(ImageOps.exif_transpose(im))
    if alpha and not rules.alpha:
        picture, alpha = _flatten(picture), False
    if rules.exact_sizes:
        target = _pick_size(picture.size, rules.exact_sizes, orientation, size)
        picture = _crop_resize(picture, target)
    else:
        inside = _inside_aspect(picture.size, rules)
        if inside != picture.size:
            picture = _crop_resize(picture, inside)
        if rules.max_side is not None and max(picture.size) > rules.max_side:
            scale = rules.max_side / max(picture.size)
            picture = picture.resize(
                (max(1, int(picture.width * scale)), max(1, int(picture.height * scale))),
                Image.Resampling.LANCZOS, reducing_gap=3.0,
            )
    return _encode_to_fit(picture, alpha, rules, may_shrink=not rules.exact_sizes)


# -- decoding -----------------------------------------------------------------------


def _open(data: bytes, max_input_bytes: int) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageProblem("The file is empty.")
    if len(data) > max_input_bytes:
        raise ImageProblem(
            f"The image is too large: {len(data) / _MB:.1f} MB; "
            f"the limit is {max_input_bytes / _MB:.0f} MB."
        )
    try:
        im = Image.open(io.BytesIO(data), formats=tuple(MIME))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # The warning is only an exception when warnings are errors (python -W error).
        raise ImageProblem(_too_many_pixels(None)) from None
    except UnidentifiedImageError:
        raise ImageProblem(_unsupported(data)) from None
    except Exception:  # Pillow's plugins raise a grab bag on malformed headers
        raise ImageProblem(_DAMAGED) from None
    width, height = im.size
    if width <= 0 or height <= 0:
        im.close()
        raise ImageProblem(_DAMAGED)
    if width * height > MAX_PIXELS:
        im.close()
        raise ImageProblem(_too_many_pixels((width, height)))
    if im.format != "MPO" and getattr(im, "n_frames", 1) > 1:
        im.close()
        raise ImageProblem(
            "Animated images are not supported: please send a still JPEG, PNG or WebP image."
        )
    return im


def _load(im: Image.Image) -> None:
    from PIL import Image

    try:
        im.load()
    except (Image.DecompressionBombError, MemoryError):
        raise ImageProblem(_too_many_pixels(im.size)) from None
    except Exception:  # truncated (OSError), bad chunks (SyntaxError), bad data (ValueError)
        raise ImageProblem(_DAMAGED) from None


def _unsupported(data: bytes) -> str:
    for magic, name in _OTHER_FORMATS.items():
        if data.startswith(magic):
            return f"{name} images are not supported: please send a JPEG, PNG or WebP image."
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "HEIC/AVIF images are not supported: please send a JPEG, PNG or WebP image."
    return _NOT_IMAGE


def _too_many_pixels(size: tuple[int, int] | None) -> str:
    limit = f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
    if size is None:
        return f"The image is too large: it has far too many pixels; {limit}"
    megapixels = size[0] * size[1] / 1_000_000
    return f"The image is too large: {size[0]}×{size[1]} pixels ({megapixels:.0f} MP); {limit}"


def _exif_orientation(im: Image.Image) -> int | None:
    from PIL import ExifTags

    try:
        value = im.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # a corrupt EXIF block is not worth refusing the picture for
        return None
    return value if isinstance(value, int) else None


def _displayed_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    return (height, width) if _exif_orientation(im) in (5, 6, 7, 8) else (width, height)


def _normalize(im: Image.Image) -> tuple[Image.Image, bool]:
    """RGB, or RGBA when some pixel is not fully opaque. Returns (image, has_alpha)."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        im = im.convert("I") if im.mode != "F" else im
        high = im.getextrema()[1]
        if isinstance(high, int | float) and high > 255:
            # 16-bit samples (or wider): scale down, as convert("L") would clip them.
            factor = 1 / 257 if high <= 65535 else 255 / high
            im = im.point(lambda v: v * factor)
        im = im.convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        im = im.convert("RGBA")
        low_alpha = im.getchannel("A").getextrema()[0]
        if isinstance(low_alpha, int | float) and low_alpha >= 255:
            return im.convert("RGB"), False
        return im, True
    return (im if im.mode == "RGB" else im.convert("RGB")), False


# -- fitting ------------------------------------------------------------------------


def _pick_size(
    current: tuple[int, int],
    sizes: tuple[tuple[int, int], ...],
    orientation: Orientation | None,
    wanted: tuple[int, int] | None,
) -> tuple[int, int]:
    if wanted is not None:
        if wanted not in sizes:
            raise ValueError(f"size {wanted} is not one of {sizes}")
        return wanted
    width, height = current
    orientation = orientation or (
        Orientation.LANDSCAPE if width >= height else Orientation.PORTRAIT
    )
    landscape = orientation is Orientation.LANDSCAPE
    candidates = [s for s in sizes if (s[0] >= s[1]) == landscape] or list(sizes)
    aspect = width / height

    def gap(s: tuple[int, int]) -> float:
        return abs(math.log((s[0] / s[1]) / aspect))

    best = min(gap(s) for s in candidates)
    close = [s for s in candidates if gap(s) <= best + 0.05]  # within 5%: a tie
    return min(close, key=lambda s: s[0] * s[1])


def _inside_aspect(size: tuple[int, int], rules: ImageRules) -> tuple[int, int]:
    """``size``, or the largest centre crop of it strictly inside an exclusive aspect range
    (an image exactly on a bound loses a pixel or two); check_rules refuses the far ones."""
    width, height = size
    if not rules.aspect_exclusive:
        return size
    if width / height <= rules.min_aspect:
        height = min(height, math.ceil(width / rules.min_aspect) - 1)
        while height > 1 and width / height <= rules.min_aspect:
            height -= 1
    elif width / height >= rules.max_aspect:
        width = min(width, math.ceil(height * rules.max_aspect) - 1)
        while width > 1 and width / height >= rules.max_aspect:
            width -= 1
    return width, height


def _flatten(im: Image.Image) -> Image.Image:
    """An RGBA picture on a white background, as RGB."""
    from PIL import Image

    flat = Image.new("RGB", im.size, (255, 255, 255))
    flat.paste(im, mask=im.getchannel("A"))
    return flat


def _crop_resize(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Centre-crop to the target's aspect and resize to exactly ``target``."""
    from PIL import Image

    width, height = im.size
    target_aspect = target[0] / target[1]
    if width / height > target_aspect:
        crop_w = height * target_aspect
        box = ((width - crop_w) / 2, 0.0, (width + crop_w) / 2, float(height))
    else:
        crop_h = width / target_aspect
        box = (0.0, (height - crop_h) / 2, float(width), (height + crop_h) / 2)
    return im.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _save(im: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        im.save(out, "JPEG", quality=quality, optimize=True)
    elif fmt == "WEBP":
        im.save(out, "WEBP", quality=quality, method=4)
    else:
        im.save(out, "PNG", compress_level=6)
    return out.getvalue()


def _encode_to_fit(
    im: Image.Image, alpha: bool, rules: ImageRules, *, may_shrink: bool
) -> FittedImage:
    from PIL import Image

    if alpha and "PNG" in rules.formats:
        data = _save(im, "PNG", 0)
        if len(data) <= rules.max_bytes:
            return FittedImage(data, MIME["PNG"], im.width, im.height)
    if alpha:  # too big as PNG (or PNG not taken): flatten on white
        im = _flatten(im)
    fmt = next((f for f in ("JPEG", "WEBP", "PNG") if f in rules.formats), "JPEG")
    qualities: tuple[int, ...] = (92, 85, 75, 65) if fmt != "PNG" else (0,)
    for _ in range(8):
        for quality in qualities:
            data = _save(im, fmt, quality)
            if len(data) <= rules.max_bytes:
                return FittedImage(data, MIME[fmt], im.width, im.height)
        scale = min(0.9, math.sqrt(rules.max_bytes / len(data)) * 0.95)
        new_size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        if not may_shrink or min(new_size) < rules.min_short_side:
            break
        im = im.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        qualities = (85, 75) if fmt != "PNG" else (0,)
    raise ImageProblem(
        f"The image could not be made smaller than {rules.max_bytes / _MB:.0f} MB "
        "without losing too much detail; please send a smaller image."
    )


def _ratio(value: float) -> str:
    frac = Fraction(value).limit_denominator(20)
    return f"{frac.numerator}:{frac.denominator}"
