from __future__ import annotations

import pytest

from bot.catalog import MODELS, Mode, Orientation, Shape, get_model
from bot.providers.base import GenerationRequest, SourceImage
from bot.providers.errors import InvalidRequest
from bot.providers.validation import validate_request
from tests.providers.helpers import image_bytes, source_image

APIXO = get_model("apixo", "sora-2")
PIXAZO = get_model("pixazo", "sora-2-pro")
AIV = get_model("aivideoapi", "sora-2")


def req(prompt: str = "a cat surfing", duration: int = 4, **kw: object) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, duration=duration, **kw)


@pytest.mark.parametrize("spec", [m for m in MODELS if Mode.TEXT in m.modes],
                         ids=lambda s: s.key)
def test_every_catalog_model_accepts_a_plain_request(spec: object) -> None:
    for duration in spec.durations:  # type: ignore[attr-defined]
        for orientation in spec.orientations:  # type: ignore[attr-defined]
            validate_request(spec, req(duration=duration, orientation=orientation))  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [m for m in MODELS if Mode.TEXT not in m.modes],
                         ids=lambda s: s.key)
def test_an_image_only_model_refuses_a_prompt_alone(spec: object) -> None:
    with pytest.raises(InvalidRequest, match="cannot make videos from a prompt alone"):
        validate_request(spec, req(duration=spec.durations[0]))  # type: ignore[arg-type, attr-defined]


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt(prompt: str) -> None:
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        validate_request(APIXO, req(prompt))


def test_prompt_length_limit_is_the_spec_s() -> None:
    validate_request(AIV, req("x" * AIV.prompt_max))
    with pytest.raises(InvalidRequest) as info:
        validate_request(AIV, req("x" * (AIV.prompt_max + 1)))
    assert "5,000" in info.value.user_message
    assert "5,001" in info.value.user_message
    validate_request(APIXO, req("x" * (AIV.prompt_max + 1)))  # APIXO takes 10000


def test_surrounding_whitespace_does_not_count() -> None:
    validate_request(AIV, req("  " + "x" * AIV.prompt_max + "\n"))


@pytest.mark.parametrize("duration", [0, 5, 10, 15, -4])
def test_duration_not_offered(duration: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_request(APIXO, req(duration=duration))
    assert "4, 8 or 12 seconds" in info.value.user_message


def test_mode_not_offered() -> None:
    text_only = APIXO.model_copy(update={"shapes": {Shape.TEXT: {}}})
    with pytest.raises(InvalidRequest, match="from an image"):
        validate_request(text_only, req(image=source_image()))
    image_only = APIXO.model_copy(update={"shapes": {Shape.IMAGE: {}}})
    with pytest.raises(InvalidRequest, match="from a prompt alone"):
        validate_request(image_only, req())


def test_orientation_not_offered() -> None:
    landscape = APIXO.model_copy(update={"orientations": (Orientation.LANDSCAPE,)})
    with pytest.raises(InvalidRequest, match="portrait"):
        validate_request(landscape, req(orientation=Orientation.PORTRAIT))


def test_image_needs_url_for_url_transport() -> None:
    validate_request(APIXO, req(image=source_image()))
    with pytest.raises(InvalidRequest, match="web link"):
        validate_request(APIXO, req(image=source_image(url=None)))
    with pytest.raises(InvalidRequest):
        validate_request(APIXO, req(image=source_image(url="file:///etc/passwd")))


def test_pixazo_needs_exact_size_but_no_url() -> None:
    validate_request(PIXAZO, req(image=source_image(1280, 720, url=None)))
    validate_request(PIXAZO, req(image=source_image(1024, 1792, url=None)))
    with pytest.raises(InvalidRequest, match="exactly"):
        validate_request(PIXAZO, req(image=source_image(1000, 700, url=None)))


@pytest.mark.parametrize(
    ("width", "height", "words"),
    [(299, 400, "too small"), (1000, 300, "too wide"), (300, 751, "too tall")],
)
def test_image_geometry(width: int, height: int, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        validate_request(AIV, req(image=source_image(width, height)))


def test_image_aspect_bounds_are_inclusive() -> None:
    validate_request(AIV, req(image=source_image(750, 300)))  # exactly 5:2
    validate_request(AIV, req(image=source_image(300, 750)))  # exactly 2:5


def test_image_format_and_size() -> None:
    gif = SourceImage(data=b"GIF89a", mime="image/gif", width=640, height=480, url="https://x/y")
    with pytest.raises(InvalidRequest, match="JPEG, PNG or WebP"):
        validate_request(APIXO, req(image=gif))
    small_limit = APIXO.model_copy(
        update={"image": APIXO.image.model_copy(update={"max_bytes": 100})}
    )
    with pytest.raises(InvalidRequest, match="too large"):
        validate_request(small_limit, req(image=source_image()))
    jpeg = SourceImage(data=image_bytes(fmt="JPEG"), mime="image/jpeg", width=1280, height=720,
                       url="https://x/y.jpg")
    validate_request(APIXO, req(image=jpeg))
