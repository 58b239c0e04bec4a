from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image, ImageFile

from bot.catalog import ImageRules, Orientation, get_model
from bot.media.images import (
    FittedImage,
    ImageProblem,
    check_rules,
    fit_image,
    image_orientation,
    inspect_image,
)
from bot.providers.base import SourceImage
from bot.providers.validation import validate_image

RULES = ImageRules()
PIXAZO = get_model("pixazo", "sora-2-pro").image


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with some structure, so that encoders have something to do."""
    im = Image.linear_gradient("L").resize(size)
    if mode == "RGB":
        return Image.merge("RGB", (im, im.transpose(Image.Transpose.ROTATE_90).resize(size), im))
    return im.convert(mode)


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def handmade_png(
    width: int, height: int, bit_depth: int, color_type: int, rows: Iterator[bytes]
) -> bytes:
    """A PNG written row by row, without ever holding the raw pixels in memory."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(b"\x00" + row) for row in rows) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def one_colour_png(width: int, height: int) -> bytes:
    row = bytes((width + 7) // 8)  # 1-bit greyscale
    return handmade_png(width, height, 1, 0, (row for _ in range(height)))


# -- inspect_image --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_supported_formats_are_accepted(fmt: str, mime: str) -> None:
    data = encode(gradient((800, 450)), fmt)
    info = inspect_image(data)
    assert (info.format, info.mime, info.width, info.height) == (fmt, mime, 800, 450)
    assert info.n_frames == 1
    check_rules(info, RULES)
    assert image_orientation(info) is Orientation.LANDSCAPE


def test_text_file_named_png_is_refused() -> None:
    with pytest.raises(ImageProblem) as err:
        inspect_image(b"<html><body>Not found</body></html>\n")
    assert err.value.user_message == "That file is not a JPEG, PNG or WebP image."


def test_zero_bytes_are_refused() -> None:
    with pytest.raises(ImageProblem, match="empty"):
        inspect_image(b"")


def test_truncated_jpeg_is_refused() -> None:
    data = encode(noise((800, 600)), "JPEG", quality=90)
    with pytest.raises(ImageProblem, match="damaged or incomplete"):
        inspect_image(data[: len(data) // 2])


def test_garbage_after_a_png_signature_is_refused() -> None:
    with pytest.raises(ImageProblem):
        inspect_image(b"\x89PNG\r\n\x1a\n" + os.urandom(500))


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [Image.new("RGB", (400, 400), c) for c in ("red", "green", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageProblem, match="Animated images are not supported"):
        inspect_image(data)
    with pytest.raises(ImageProblem, match="Animated"):
        fit_image(data, RULES)


def test_animated_gif_is_refused_as_a_format() -> None:
    frames = [Image.new("P", (400, 400), c) for c in (1, 2, 3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageProblem) as err:
        inspect_image(data)
    assert "GIF images are not supported" in err.value.user_message


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_formats_are_named(fmt: str, name: str) -> None:
    with pytest.raises(ImageProblem, match=f"{name} images are not supported"):
        inspect_image(encode(gradient((400, 400)), fmt))


def test_input_over_the_byte_limit_is_refused() -> None:
    data = encode(gradient((800, 600)), "PNG")
    with pytest.raises(ImageProblem, match="too large"):
        inspect_image(data, max_input_bytes=len(data) - 1)


def test_decompression_bomb_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = one_colour_png(20_000, 20_000)  # 400 megapixels in about 60 KB
    assert len(data) < 200_000
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    started = time.monotonic()
    for call in (inspect_image, lambda d: fit_image(d, RULES)):
        with pytest.raises(ImageProblem, match="too large"):
            call(data)
    assert loads == []
    assert time.monotonic() - started < 2


def test_image_over_our_pixel_cap_is_refused_before_decoding() -> None:
    # 48 megapixels: under Pillow's own bomb threshold, over ours (40).
    with pytest.raises(ImageProblem, match=r"8000×6000 pixels .*40 megapixels"):
        inspect_image(one_colour_png(8000, 6000))


# -- check_rules ----------------------------------------------------------------------


def test_tiny_image_is_refused() -> None:
    info = inspect_image(encode(gradient((200, 250)), "PNG"))
    with pytest.raises(ImageProblem) as err:
        check_rules(info, RULES)
    assert err.value.user_message == (
        "The image is too small: its shortest side is 200 px; it needs at least 300 px."
    )


@pytest.mark.parametrize("size", [(300, 1200), (1200, 300)])
def test_extreme_aspect_is_refused(size: tuple[int, int]) -> None:
    info = inspect_image(encode(gradient(size), "JPEG"))
    with pytest.raises(ImageProblem, match="between 2:5 and 5:2"):
        check_rules(info, RULES)


def test_aspect_exactly_at_the_limit_is_accepted() -> None:
    check_rules(inspect_image(encode(gradient((400, 1000)), "PNG")), RULES)


# -- fit_image ------------------------------------------------------------------------


def decode(fitted: FittedImage) -> Image.Image:
    im = Image.open(io.BytesIO(fitted.data))
    im.load()
    assert im.size == (fitted.width, fitted.height)
    assert Image.MIME[str(im.format)] == fitted.mime
    return im


def test_good_file_is_kept_as_it_is() -> None:
    data = encode(gradient((800, 600)), "JPEG")
    fitted = fit_image(data, RULES)
    assert fitted.data == data and not fitted.changed
    assert (fitted.mime, fitted.width, fitted.height) == ("image/jpeg", 800, 600)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(gradient((640, 480)).convert("CMYK"), "JPEG")
    info = inspect_image(data)
    assert info.mode == "CMYK"
    fitted = fit_image(data, RULES)
    assert fitted.changed and fitted.mime == "image/jpeg"
    assert decode(fitted).mode == "RGB"


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    data = encode(Image.new("I;16", (400, 400), 40_000), "PNG")
    assert inspect_image(data).mode.startswith("I")
    im = decode(fit_image(data, RULES))
    assert im.mode == "RGB"
    assert abs(im.getpixel((10, 10))[0] - 40_000 // 257) <= 2  # type: ignore[index]


def test_16_bit_rgb_png_is_handled() -> None:
    row = struct.pack(">HHH", 65535, 32768, 0) * 400
    data = handmade_png(400, 300, 16, 2, (row for _ in range(300)))
    fitted = fit_image(data, RULES)
    red, green, blue = decode(fitted).getpixel((5, 5))  # type: ignore[misc]
    assert red > 250 and 120 < green < 135 and blue < 5


def test_palette_and_la_images_become_rgb() -> None:
    for mode in ("P", "LA", "1"):
        im = decode(fit_image(encode(gradient((400, 400)).convert(mode), "PNG"), PIXAZO))
        assert im.mode == "RGB"


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(gradient((800, 600)), "JPEG", exif=exif)
    info = inspect_image(data)
    assert (info.width, info.height) == (600, 800)
    assert image_orientation(info) is Orientation.PORTRAIT
    fitted = fit_image(data, RULES)
    assert fitted.changed and (fitted.width, fitted.height) == (600, 800)


def test_transparency_that_matters_stays_png() -> None:
    im = gradient((500, 400)).convert("RGBA")
    im.putalpha(128)
    fitted = fit_image(encode(im, "PNG"), PIXAZO)
    assert (fitted.mime, fitted.width, fitted.height) == ("image/png", 1280, 720)
    assert decode(fitted).mode == "RGBA"


def test_opaque_alpha_channel_is_dropped() -> None:
    fitted = fit_image(encode(gradient((500, 400)).convert("RGBA"), "PNG"), PIXAZO)
    assert fitted.mime == "image/jpeg"


@pytest.mark.parametrize(
    ("size", "orientation", "wanted", "expected"),
    [
        ((1600, 1000), None, None, (1280, 720)),
        ((900, 1600), None, None, (720, 1280)),
        ((3000, 3000), Orientation.PORTRAIT, None, (720, 1280)),
        ((3000, 3000), Orientation.LANDSCAPE, None, (1280, 720)),
        ((640, 480), Orientation.LANDSCAPE, (1792, 1024), (1792, 1024)),
        ((1000, 2400), None, (1024, 1792), (1024, 1792)),
    ],
)
def test_pixazo_gets_exact_sizes(
    size: tuple[int, int],
    orientation: Orientation | None,
    wanted: tuple[int, int] | None,
    expected: tuple[int, int],
) -> None:
    data = encode(gradient(size), "PNG")
    fitted = fit_image(data, PIXAZO, orientation, size=wanted)
    assert (fitted.width, fitted.height) == expected
    assert decode(fitted).size == expected
    source = fitted.to_source()
    assert isinstance(source, SourceImage) and source.url is None
    validate_image(PIXAZO, source)  # the request validator accepts it as is


def test_pixazo_crop_is_centred() -> None:
    im = Image.new("RGB", (2000, 720), "red")
    im.paste((0, 0, 255), (360, 0, 1640, 720))  # the centre 1280 columns are blue
    fitted = fit_image(encode(im, "PNG"), PIXAZO)
    out = decode(fitted).convert("RGB")
    for x in (5, 640, 1274):
        red, _, blue = out.getpixel((x, 360))  # type: ignore[misc]
        assert blue > 200 and red < 60


def test_unknown_exact_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        fit_image(encode(gradient((800, 600)), "PNG"), PIXAZO, size=(1000, 1000))


def test_oversized_png_is_reencoded_under_the_limit() -> None:
    data = encode(noise((2000, 1800)), "PNG", compress_level=1)
    assert len(data) > RULES.max_bytes
    fitted = fit_image(data, RULES)
    assert fitted.changed and len(fitted.data) <= RULES.max_bytes
    assert fitted.mime == "image/jpeg"
    decode(fitted)


def test_reencoding_downscales_when_quality_alone_is_not_enough() -> None:
    rules = ImageRules(max_bytes=300_000)
    fitted = fit_image(encode(noise((1600, 1200)), "PNG", compress_level=1), rules)
    assert len(fitted.data) <= rules.max_bytes
    assert fitted.width < 1600 and fitted.width / fitted.height == pytest.approx(4 / 3, 0.01)
    assert min(fitted.width, fitted.height) >= rules.min_short_side


def test_impossible_fit_says_so() -> None:
    rules = ImageRules(max_bytes=20_000)
    with pytest.raises(ImageProblem, match="could not be made smaller"):
        fit_image(encode(noise((1200, 900)), "PNG", compress_level=1), rules)


def test_multi_picture_jpeg_from_a_camera_uses_its_main_picture() -> None:
    main, preview = gradient((800, 600)), Image.new("RGB", (800, 600), "blue")
    data = encode(main, "MPO", save_all=True, append_images=[preview])
    info = inspect_image(data)
    assert (info.format, info.n_frames) == ("JPEG", 1)
    fitted = fit_image(data, RULES)
    assert fitted.changed and decode(fitted).format == "JPEG"
    assert len(fitted.data) < len(data)  # the second picture is dropped


def test_bomb_warning_raised_as_an_error_still_reads_as_too_large() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageProblem, match="too large"):
            inspect_image(one_colour_png(10_000, 10_000))  # 100 MP: Pillow warns
