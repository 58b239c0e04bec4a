from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.catalog import Orientation, get_model
from bot.media.images import fit_image
from bot.media.video import probe_mp4
from bot.providers import sandbox as sandbox_module
from bot.providers.base import GenerationRequest, TaskState
from bot.providers.download import DownloadError, DownloadTooLarge
from bot.providers.errors import InvalidRequest, TaskNotFound
from bot.providers.sandbox import SandboxProvider

SPEC = get_model("sandbox", "sora-2")


def request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {"prompt": "a lighthouse in a storm", "duration": 4}
    fields.update(overrides)
    return GenerationRequest(**fields)


async def finished(provider: SandboxProvider, task_id: str) -> str:
    status = await provider.status(SPEC, task_id)
    assert status.state is TaskState.SUCCEEDED, status
    assert status.progress == 1.0 and len(status.video_urls) == 1
    return status.video_urls[0]


@pytest.fixture
def counted_renders(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    rendered: list[Path] = []
    real = sandbox_module.make_test_card

    def counting(path: Path, **kwargs: Any) -> None:
        rendered.append(path)
        time.sleep(0.05)  # widen the window in which a second render could start
        real(path, **kwargs)

    monkeypatch.setattr(sandbox_module, "make_test_card", counting)
    return rendered


async def test_submit_running_then_succeeded_with_a_real_mp4(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    provider = SandboxProvider(delay_s=0.3, work_dir=tmp_path / "work")
    task_id = await provider.submit(SPEC, request(), callback_url="http://127.0.0.1:1/cb")
    assert task_id.startswith("sbx_")

    status = await provider.status(SPEC, task_id)
    assert status.state is TaskState.RUNNING
    assert status.progress is not None and 0 <= status.progress < 1
    assert status.video_urls == []

    await asyncio.sleep(0.35)
    url = await finished(provider, task_id)
    assert url.startswith("sandbox://sandbox-") and url.endswith(".mp4")

    dest = tmp_path / "out" / "video.mp4"
    size = await provider.download(session, url, dest, 5_000_000)
    info = probe_mp4(dest)
    assert size == info.size_bytes == dest.stat().st_size
    assert info.duration_s == pytest.approx(4, abs=0.1)
    assert (info.width, info.height) == (640, 360)
    assert info.video_codec == "h264" and info.has_audio


async def test_portrait_and_image_requests(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    picture = io.BytesIO()
    Image.new("RGB", (600, 900), "teal").save(picture, "PNG")
    image = fit_image(picture.getvalue(), SPEC.image).to_source(None)  # no URL needed
    task_id = await provider.submit(
        SPEC, request(orientation=Orientation.PORTRAIT, duration=8, image=image)
    )
    dest = tmp_path / "portrait.mp4"
    await provider.download(session, await finished(provider, task_id), dest, 5_000_000)
    info = probe_mp4(dest)
    assert (info.width, info.height) == (360, 640)
    assert info.duration_s == pytest.approx(8, abs=0.1)


@pytest.mark.parametrize(
    "bad",
    [{"prompt": "   "}, {"duration": 5}, {"prompt": "x" * (SPEC.prompt_max + 1)}],
)
async def test_submit_validates_the_request(tmp_path: Path, bad: dict[str, Any]) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    with pytest.raises(InvalidRequest):
        await provider.submit(SPEC, request(**bad))


async def test_a_restart_still_resolves_the_id(
    tmp_path: Path, session: aiohttp.ClientSession, counted_renders: list[Path]
) -> None:
    work = tmp_path / "work"
    first = SandboxProvider(delay_s=0.2, work_dir=work)
    task_id = await first.submit(SPEC, request())
    assert (await first.status(SPEC, task_id)).state is TaskState.RUNNING
    del first  # the bot stops; a new process starts on the same work_dir

    await asyncio.sleep(0.25)
    second = SandboxProvider(delay_s=0.2, work_dir=work)
    url = await finished(second, task_id)
    third = SandboxProvider(delay_s=0.2, work_dir=work)
    assert await finished(third, task_id) == url
    assert len(counted_renders) == 1  # the card on disk was reused

    # Even with the work_dir wiped, the id alone is enough to make the card again.
    fresh = SandboxProvider(delay_s=0.2, work_dir=tmp_path / "elsewhere")
    dest = tmp_path / "again.mp4"
    await fresh.download(session, await finished(fresh, task_id), dest, 5_000_000)
    assert probe_mp4(dest).duration_s == pytest.approx(4, abs=0.1)
    assert len(counted_renders) == 2


async def test_concurrent_status_calls_render_once(
    tmp_path: Path, counted_renders: list[Path]
) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    task_id = await provider.submit(SPEC, request())
    statuses = await asyncio.gather(*(provider.status(SPEC, task_id) for _ in range(6)))
    assert {s.state for s in statuses} == {TaskState.SUCCEEDED}
    assert len({s.video_urls[0] for s in statuses}) == 1
    assert len(counted_renders) == 1


async def test_distinct_submits_get_distinct_ids(tmp_path: Path) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    ids = {await provider.submit(SPEC, request()) for _ in range(5)}
    assert len(ids) == 5


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def forged(task: dict[str, Any]) -> str:
    raw = json.dumps(task).encode()
    return "sbx_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD = {"p": "hi", "d": 4, "o": "landscape", "t": 1_700_000_000.0, "n": "ab"}


@pytest.mark.parametrize(
    "task_id",
    [
        "",
        "nope",
        "sbx_",
        "sbx_!!!not-base64!!!",
        "sbx_" + base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
        forged(["a", "list"]),  # type: ignore[arg-type]
        forged({**GOOD, "d": 3600}),  # a duration the model does not offer
        forged({**GOOD, "d": "4"}),
        forged({**GOOD, "o": "diagonal"}),
        forged({**GOOD, "p": "x" * 5000}),
        forged({**GOOD, "t": "yesterday"}),
        forged({**GOOD, "i": [0, 10]}),
        "apixo-task-123",
    ],
)
async def test_garbage_ids_are_not_found(tmp_path: Path, task_id: str) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    with pytest.raises(TaskNotFound):
        await provider.status(SPEC, task_id)
    assert entries(tmp_path) == []


async def test_a_well_formed_forged_id_is_just_a_card(tmp_path: Path) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    await finished(provider, forged(GOOD))


@pytest.mark.parametrize(
    "url",
    [
        "sandbox://../../etc/passwd",
        "sandbox:///etc/passwd",
        "sandbox://sandbox-0123.mp4",
        "sandbox://sandbox-" + "0" * 32 + ".mp4/../../secret",
        "sandbox://..%2F..%2Fetc%2Fpasswd",
        "file:///etc/passwd",
        "https://example.com/video.mp4",
        "",
    ],
)
async def test_download_refuses_anything_but_its_own_cards(
    tmp_path: Path, session: aiohttp.ClientSession, url: str
) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path / "work")
    dest = tmp_path / "dest.mp4"
    with pytest.raises(DownloadError):
        await provider.download(session, url, dest, 5_000_000)
    assert not dest.exists()


async def test_download_refuses_a_symlink_out_of_the_work_dir(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    name = "sandbox-" + "a" * 32 + ".mp4"
    (work / name).symlink_to(secret)
    provider = SandboxProvider(delay_s=0, work_dir=work)
    with pytest.raises(DownloadError):
        await provider.download(session, f"sandbox://{name}", tmp_path / "d.mp4", 5_000_000)


async def test_download_of_a_missing_card_and_the_size_cap(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path / "work")
    with pytest.raises(DownloadError, match="no longer available"):
        await provider.download(
            session, "sandbox://sandbox-" + "b" * 32 + ".mp4", tmp_path / "x.mp4", 10**9
        )
    url = await finished(provider, await provider.submit(SPEC, request()))
    dest = tmp_path / "capped.mp4"
    with pytest.raises(DownloadTooLarge):
        await provider.download(session, url, dest, 1_000)
    assert not dest.exists()


async def test_no_callbacks_and_no_key(tmp_path: Path) -> None:
    provider = SandboxProvider(delay_s=0, work_dir=tmp_path)
    assert provider.name == "sandbox"
    assert provider.parse_callback(b'{"taskId": "sbx_x"}') is None
    await provider.check_key()
