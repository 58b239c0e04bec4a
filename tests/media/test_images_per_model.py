"""Images fitted to each model's own rules (formats, longest side, alpha, aspect, bytes),
then accepted by the same model's last-guard validation."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.catalog import get_model
from bot.media.images import ImageProblem, check_rules, fit_image, inspect_image
from bot.providers.validation import validate_image

VEO = get_model("apixo", "veo-3-1").image
WAN = get_model("apixo", "wan-2-5-video").image
HAILUO = get_model("apixo", "hailuo-2-3").image
KLING = get_model("apixo", "kling-2-1").image


def encode(im: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def fitted_ok(data: bytes, rules_name: str) -> tuple[str, int, int, bool]:
    rules = {"veo": VEO, "wan": WAN, "hailuo": HAILUO, "kling": KLING}[rules_name]
    check_rules(inspect_image(data), rules)
    fitted = fit_image(data, rules)
    validate_image(rules, fitted.to_source("https://img.example/x"))
    with Image.open(io.BytesIO(fitted.data)) as im:
        assert (im.width, im.height) == (fitted.width, fitted.height)
        return str(im.format), im.width, im.height, fitted.changed


def test_veo_takes_jpeg_or_png_so_webp_is_re_encoded() -> None:
    webp = encode(Image.new("RGB", (1280, 720), (10, 200, 90)), "WEBP")
    fmt, width, height, changed = fitted_ok(webp, "veo")
    assert fmt in ("JPEG", "PNG") and (width, height) == (1280, 720) and changed
    fmt, *_, changed = fitted_ok(webp, "kling")  # Kling's rules keep WebP as it is
    assert fmt == "WEBP" and not changed


def test_wan_flattens_transparency_and_scales_down_past_8000_px() -> None:
    clear = Image.new("RGBA", (900, 600), (255, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 450, 600))
    _, width, height, changed = fitted_ok(encode(clear, "PNG"), "wan")
    assert changed and (width, height) == (900, 600)
    with Image.open(io.BytesIO(fit_image(encode(clear, "PNG"), WAN).data)) as im:
        assert "A" not in im.getbands()
        assert im.convert("RGB").getpixel((800, 300)) == (255, 255, 255)  # on white
    wide = encode(Image.new("RGB", (8400, 4000), (90, 90, 90)), "PNG")
    _, width, height, changed = fitted_ok(wide, "wan")
    assert changed and width == 8000 and abs(height - 3810) <= 1
    _, width, _, changed = fitted_ok(wide, "veo")  # no side limit on Veo's page
    assert width == 8400


def test_wan_takes_a_small_image_veo_does_not() -> None:
    small = encode(Image.new("RGB", (260, 260), (1, 2, 3)), "PNG")
    assert fitted_ok(small, "wan")[1:3] == (260, 260)
    with pytest.raises(ImageProblem, match="at least 300"):
        check_rules(inspect_image(small), VEO)


@pytest.mark.parametrize(("size", "expect"), [((1000, 400), (999, 400)),
                                              ((400, 1000), (400, 999))])
def test_hailuo_wants_an_aspect_strictly_inside_2_5_and_5_2(
    size: tuple[int, int], expect: tuple[int, int]
) -> None:
    data = encode(Image.new("RGB", size, (200, 100, 0)), "PNG")
    _, width, height, changed = fitted_ok(data, "hailuo")
    assert changed and (width, height) == expect
    # the short side must be over 300: exactly 300 is refused
    with pytest.raises(ImageProblem, match="at least 301"):
        check_rules(inspect_image(encode(Image.new("RGB", (600, 300)), "PNG")), HAILUO)
