"""What the APIXO adapter sends for each model after Sora: exactly the ``input`` its page
describes (MODELS_AFTER_SORA.md), built from the catalog entry alone."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bot.catalog import ModelSpec, Orientation, get_model
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest, SourceImage
from bot.providers.errors import InvalidRequest
from bot.providers.validation import validate_request
from tests.providers.helpers import KEY, ScriptServer, Step, source_image

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT
OK = Step(200, {"code": 200, "message": "success", "data": {"taskId": "task_1"}})
START, END = "https://img.example/start.png", "https://img.example/end.png"


def spec(model: str) -> ModelSpec:
    return get_model("apixo", model)


def req(duration: int, orientation: Orientation = L, *, image: bool = False, end: bool = False,
        **kw: Any) -> GenerationRequest:
    start = source_image(1280, 720, url=START) if image or end else None
    last = source_image(1280, 720, url=END) if end else None
    return GenerationRequest(prompt=" a heron takes off ", duration=duration,
                             orientation=orientation, image=start, end_image=last, **kw)


CASES = [
    # Veo 3.1: the tier is input.mode, the shape is generationType, no duration field.
    ("veo-3-1-fast", req(8), "veo-3-1",
     {"generationType": "TEXT_2_VIDEO", "mode": "fast", "aspect_ratio": "16:9"}),
    ("veo-3-1", req(8, P, seed=42), "veo-3-1",
     {"generationType": "TEXT_2_VIDEO", "mode": "quality", "aspect_ratio": "9:16", "seed": 42}),
    ("veo-3-1-fast", req(8, image=True), "veo-3-1",
     {"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO", "mode": "fast",
      "aspect_ratio": "16:9", "image_urls": [START]}),
    ("veo-3-1", req(8, end=True), "veo-3-1",
     {"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO", "mode": "quality",
      "aspect_ratio": "16:9", "image_urls": [START, END]}),
    # Wan 2.5: integer 5/10, a resolution, aspect for text only, negative prompt and seed.
    ("wan-2-5-video", req(10, P, negative_prompt=" blur ", seed=7), "wan-2-5-video",
     {"mode": "text-to-video", "duration": 10, "aspect_ratio": "9:16", "resolution": "720p",
      "negative_prompt": "blur", "seed": 7}),
    ("wan-2-5-video", req(5, image=True), "wan-2-5-video",
     {"mode": "image-to-video", "duration": 5, "resolution": "720p", "image_urls": [START]}),
    # Kling 2.5 Turbo Pro: the end frame is the second image URL.
    ("kling-2-5-turbo-pro", req(5, negative_prompt="text"), "kling-2-5-turbo-pro",
     {"mode": "text-to-video", "duration": 5, "aspect_ratio": "16:9",
      "negative_prompt": "text"}),
    ("kling-2-5-turbo-pro", req(10, end=True), "kling-2-5-turbo-pro",
     {"mode": "image-to-video", "duration": 10, "image_urls": [START, END]}),
    # Kling 2.1: master tier for text, standard for one image, pro with an end frame.
    ("kling-2-1", req(5, P), "kling-2-1",
     {"mode": "master-text-to-video", "duration": 5, "aspect_ratio": "9:16"}),
    ("kling-2-1", req(10, image=True), "kling-2-1",
     {"mode": "standard-image-to-video", "duration": 10, "image_urls": [START]}),
    ("kling-2-1", req(5, end=True), "kling-2-1",
     {"mode": "pro-image-to-video", "duration": 5, "image_urls": [START, END]}),
    # Hailuo 2.3: standard modes take 6/10; pro modes are always 5 s (no duration sent).
    ("hailuo-2-3", req(6), "hailuo-2-3", {"mode": "standard-text-to-video", "duration": 6}),
    ("hailuo-2-3", req(10, image=True), "hailuo-2-3",
     {"mode": "standard-image-to-video", "duration": 10, "image_urls": [START]}),
    ("hailuo-2-3-pro", req(5), "hailuo-2-3", {"mode": "pro-text-to-video"}),
    ("hailuo-2-3-pro", req(5, image=True), "hailuo-2-3",
     {"mode": "pro-image-to-video", "image_urls": [START]}),
]


@pytest.mark.parametrize(("model", "request_", "api_model", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_each_model_sends_its_page_s_input(
    server: ScriptServer, session: aiohttp.ClientSession, model: str,
    request_: GenerationRequest, api_model: str, expected: dict[str, Any],
) -> None:
    server.then(OK)
    provider = ApixoProvider(session, server.url + "/api/v1", KEY)
    assert await provider.submit(spec(model), request_, None) == "task_1"
    seen = server.seen[0]
    assert seen.path == f"/api/v1/generateTask/{api_model}"
    assert seen.json == {"request_type": "async",
                         "input": {"prompt": "a heron takes off", **expected}}


@pytest.mark.parametrize(
    ("model", "request_", "needle"),
    [
        ("veo-3-1", req(5), "8-second videos, not 5"),
        ("hailuo-2-3-pro", req(6), "5-second videos"),
        ("hailuo-2-3", req(5), "6 or 10 seconds"),
        ("wan-2-5-video", req(5, end=True), "takes no end frame"),
        ("hailuo-2-3", req(6, end=True), "takes no end frame"),
        ("veo-3-1-fast", req(8, negative_prompt="rain"), "no negative prompt"),
        ("kling-2-1", req(5, seed=3), "no seed"),
        ("wan-2-5-video", req(5, negative_prompt="x" * 501), "at most 500"),
        ("wan-2-5-video", req(5, seed=-1), "seed must be"),
        ("hailuo-2-3", req(6, P), "does not make portrait"),
        ("wan-2-5-video", GenerationRequest(prompt="x" * 1501, duration=5), "1,500"),
    ],
)
async def test_what_a_model_does_not_take_is_refused_before_any_http(
    server: ScriptServer, session: aiohttp.ClientSession, model: str,
    request_: GenerationRequest, needle: str,
) -> None:
    provider = ApixoProvider(session, server.url + "/api/v1", KEY)
    with pytest.raises(InvalidRequest) as info:
        await provider.submit(spec(model), request_, None)
    assert needle in info.value.user_message
    assert server.seen == []


def test_an_animated_image_keeps_its_own_shape_where_no_aspect_is_sent() -> None:
    portrait = source_image(720, 1280, url=START)
    validate_request(spec("hailuo-2-3"),  # text: landscape only; an image: its own shape
                     GenerationRequest(prompt="p", duration=6, orientation=P, image=portrait))


def test_image_rules_come_from_the_entry() -> None:
    webp = SourceImage(data=b"x" * 10, mime="image/webp", width=1280, height=720, url=START)
    with pytest.raises(InvalidRequest, match="JPEG or PNG"):
        validate_request(spec("veo-3-1"), req(8).model_copy(update={"image": webp}))
    square_ish = source_image(300, 300, url=START)  # Hailuo: the short side must be over 300
    with pytest.raises(InvalidRequest, match="too small"):
        validate_request(spec("hailuo-2-3"), req(6).model_copy(update={"image": square_ish}))
    edge = source_image(1000, 400, url=START)  # exactly 5:2: Hailuo wants strictly between
    with pytest.raises(InvalidRequest, match="too wide"):
        validate_request(spec("hailuo-2-3"), req(6).model_copy(update={"image": edge}))
    validate_request(spec("wan-2-5-video"), req(5).model_copy(update={"image": edge}))
    small = source_image(250, 250, url=START)  # Wan: each side 240-8000
    validate_request(spec("wan-2-5-video"), req(5).model_copy(update={"image": small}))


async def test_a_new_model_is_catalog_data_only(server: ScriptServer,
                                                session: aiohttp.ClientSession) -> None:
    """A made-up next model: string durations, a single image_url and a separate end-frame
    field, all from the entry; the adapter has no case for it."""
    base = spec("kling-2-5-turbo-pro")
    future = base.model_copy(update={
        "id": "next-1", "api_model": "next-1", "duration_type": "str", "image_list": False,
        "image_field": "image_url", "end_image_field": "tail_image_url"})
    server.then(OK)
    provider = ApixoProvider(session, server.url + "/api/v1", KEY)
    await provider.submit(future, req(10, end=True), "https://bot.example/cb/t")
    assert server.seen[0].path == "/api/v1/generateTask/next-1"
    assert server.seen[0].json == {
        "request_type": "callback", "callback_url": "https://bot.example/cb/t",
        "input": {"mode": "image-to-video", "prompt": "a heron takes off", "duration": "10",
                  "image_url": START, "tail_image_url": END}}
