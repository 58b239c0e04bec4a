"""The APIXO emulator's models after Sora: the adapter's requests pass it and make videos of
the right length, and wrong inputs get the 400 envelope the APIXO seeds show."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from bot.catalog import Orientation, get_model
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest, SourceImage, TaskState
from bot.providers.errors import ImageRejected, InvalidRequest
from tests.fakes.apixo import FakeApixo
from tests.providers.emulator_support import FAST, download_ok
from tests.providers.helpers import ScriptServer, image_bytes, wait_finished

L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT


@pytest.fixture
async def fake() -> AsyncIterator[FakeApixo]:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as emulator:
        yield emulator


@pytest.fixture
def provider(fake: FakeApixo, session: aiohttp.ClientSession) -> ApixoProvider:
    return ApixoProvider(session, fake.api_base, fake.api_key, retry=FAST, submit_retry=FAST)


def hosted(server: ScriptServer, name: str, width: int, height: int, fmt: str = "PNG"
           ) -> SourceImage:
    data = image_bytes(width, height, fmt)
    server.images[name] = data
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return SourceImage(data=data, mime=mime, width=width, height=height,
                       url=f"{server.url}/img/{name}")


@pytest.mark.parametrize(
    ("model", "duration", "orientation", "images", "seconds", "size"),
    [
        ("veo-3-1-fast", 8, P, 0, 8, (180, 320)),
        ("veo-3-1", 8, L, 2, 8, (320, 180)),
        ("wan-2-5-video", 10, L, 0, 10, (320, 180)),
        ("wan-2-5-video", 5, L, 1, 5, (320, 180)),
        ("kling-2-5-turbo-pro", 5, L, 2, 5, (320, 180)),
        ("kling-2-1", 10, P, 0, 10, (180, 320)),
        ("kling-2-1", 5, L, 2, 5, (320, 180)),
        ("hailuo-2-3", 6, L, 1, 6, (320, 180)),
        ("hailuo-2-3-pro", 5, L, 0, 5, (320, 180)),
    ],
)
async def test_each_model_makes_a_video_of_its_length(
    fake: FakeApixo, provider: ApixoProvider, server: ScriptServer,
    session: aiohttp.ClientSession, tmp_path: Path, model: str, duration: int,
    orientation: Orientation, images: int, seconds: int, size: tuple[int, int],
) -> None:
    spec = get_model("apixo", model)
    start = hosted(server, "a.png", 1280, 720) if images else None
    end = hosted(server, "b.png", 1280, 720) if images == 2 else None
    request = GenerationRequest(prompt="a heron takes off", duration=duration,
                                orientation=orientation, image=start, end_image=end)
    task_id = await provider.submit(spec, request)
    status = await wait_finished(provider, spec, task_id)
    assert status.state is TaskState.SUCCEEDED, status
    task = fake.tasks[task_id]
    assert task.duration == seconds
    assert task.video_size == size
    assert (task.image_info is not None) == bool(images)  # fetched and checked
    assert len(task.body["input"].get("image_urls", [])) == images
    data = await download_ok(provider, session, status.video_urls[0], tmp_path)
    (tmp_path / "v.mp4").write_bytes(data)
    with av.open(str(tmp_path / "v.mp4")) as container:
        assert abs(float(container.duration or 0) / 1e6 - seconds) < 0.6


@pytest.mark.parametrize(
    ("model", "inp", "needle"),
    [
        ("veo-3-1", {"mode": "fast", "generationType": "TEXT_2_VIDEO", "prompt": "p",
                     "duration": 8}, "input.duration is not a field"),
        ("veo-3-1", {"mode": "turbo", "generationType": "TEXT_2_VIDEO", "prompt": "p"},
         "input.mode"),
        ("veo-3-1", {"mode": "fast", "prompt": "p"}, "input.generationType is required"),
        ("veo-3-1", {"mode": "fast", "generationType": "TEXT_2_VIDEO", "prompt": "p",
                     "aspect_ratio": "landscape"}, "input.aspect_ratio"),
        ("veo-3-1", {"mode": "quality", "generationType": "REFERENCE_2_VIDEO", "prompt": "p",
                     "aspect_ratio": "16:9", "image_urls": ["http://127.0.0.1:9/a.png"]},
         "fast mode and 16:9"),
        ("veo-3-1", {"mode": "fast", "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO",
                     "prompt": "p"}, "input.image_urls"),
        ("wan-2-5-video", {"mode": "text-to-video", "prompt": "p", "duration": "5"},
         "input.duration"),
        ("wan-2-5-video", {"mode": "text-to-video", "prompt": "p", "duration": 8},
         "input.duration"),
        ("wan-2-5-video", {"mode": "text-to-video", "prompt": "p", "duration": 5,
                           "resolution": "480p", "aspect_ratio": "4:3"}, "input.aspect_ratio"),
        ("wan-2-5-video", {"mode": "image-to-video", "prompt": "p", "duration": 5,
                           "aspect_ratio": "16:9", "image_urls": ["http://127.0.0.1:9/a"]},
         "text-to-video only"),
        ("wan-2-5-video", {"mode": "text-to-video", "prompt": "x" * 1501, "duration": 5},
         "input.prompt"),
        ("wan-2-5-video", {"mode": "text-to-video", "prompt": "p", "duration": 5,
                           "negative_prompt": "x" * 501}, "input.negative_prompt"),
        ("kling-2-5-turbo-pro", {"mode": "text-to-video", "prompt": "p", "duration": 5,
                                 "cfg_scale": 0.55}, "cfg_scale"),
        ("kling-2-5-turbo-pro", {"mode": "text-to-video", "prompt": "p", "duration": 5,
                                 "seed": 1}, "input.seed is not a field"),
        ("kling-2-1", {"mode": "master-text-to-video", "prompt": "p", "duration": 5},
         "input.aspect_ratio is required"),
        ("kling-2-1", {"mode": "standard-image-to-video", "prompt": "p", "duration": 5,
                       "image_urls": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]},
         "1-1 http(s) URLs"),
        ("hailuo-2-3", {"mode": "standard-text-to-video", "prompt": "p"},
         "input.duration is required"),
        ("hailuo-2-3", {"mode": "standard-text-to-video", "prompt": "p", "duration": 5},
         "input.duration"),
        ("hailuo-2-3", {"mode": "pro-text-to-video", "prompt": "p", "duration": 6},
         "input.duration"),
        ("hailuo-2-3", {"mode": "standard-text-to-video", "prompt": "p", "duration": 6,
                        "aspect_ratio": "16:9"}, "input.aspect_ratio is not a field"),
    ],
)
async def test_wrong_inputs_get_a_400_envelope(fake: FakeApixo, session: aiohttp.ClientSession,
                                               model: str, inp: dict[str, Any],
                                               needle: str) -> None:
    async with session.post(f"{fake.api_base}/generateTask/{model}",
                            json={"request_type": "async", "input": inp},
                            headers={"Authorization": f"Bearer {fake.api_key}"}) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["code"] == 400 and body["data"] is None and needle in body["message"], body
    assert fake.submits_accepted == 0


async def test_the_emulator_checks_each_model_s_image_rules(
    fake: FakeApixo, provider: ApixoProvider, server: ScriptServer
) -> None:
    veo = get_model("apixo", "veo-3-1-fast")
    webp = hosted(server, "w.webp", 1280, 720, "WEBP").model_copy(update={"mime": "image/png"})
    with pytest.raises((ImageRejected, InvalidRequest)):  # Veo takes JPG/PNG only
        await provider.submit(veo, GenerationRequest(prompt="p", duration=8, image=webp))
    hailuo = get_model("apixo", "hailuo-2-3")
    edge = hosted(server, "e.png", 1000, 400)  # exactly 5:2; the page wants strictly between
    unchecked = hailuo.model_copy(update={"image": hailuo.image.model_copy(
        update={"aspect_exclusive": False})})
    with pytest.raises((ImageRejected, InvalidRequest)):
        await provider.submit(unchecked, GenerationRequest(prompt="p", duration=6, image=edge))
    assert fake.submits_accepted == 0
