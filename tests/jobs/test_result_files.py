"""Where a finished video waits between download and post: memory for a typical result,
a file (recorded for a restart) for a large one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.media.video import HeldVideo, VideoInfo
from bot.store import Job, Store
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import make_mp4
from tests.jobs.support import Recorder, harness


@dataclass
class Seen:
    in_memory: bool
    on_disk: bool
    recorded_path: str | None


class LookingRecorder(Recorder):
    """Notes where the video was when the post was asked for; ``hold`` keeps the post
    from finishing (a process that stops mid-post)."""

    def __init__(self, hold: bool = False) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.hold = hold
        self.store: Store | None = None  # set once the harness has opened it

    async def deliver(self, job: Job, video: HeldVideo, info: VideoInfo) -> int:
        assert self.store is not None
        stored = await self.store.job(job.id)
        assert stored is not None
        self.seen.append(Seen(video.data is not None, video.path.exists(), stored.video_path))
        assert info.size_bytes == video.size
        if self.hold:
            await asyncio.Event().wait()
        return await super().deliver(job, video, info)


def apixo(tmp_path: Path, fake: FakeApixo, recorder: Recorder):  # type: ignore[no-untyped-def]
    return harness(tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key,
                   recorder=recorder)


async def test_a_typical_result_goes_from_download_to_post_without_a_file(
    tmp_path: Path,
) -> None:
    async with FakeApixo(task_s=0.2) as fake:
        recorder = LookingRecorder()
        async with apixo(tmp_path, fake, recorder) as h:
            recorder.store = h.store
            job = await h.request()
            done = await h.wait_state(job.id, "delivered", "failed")
            assert done.state.value == "delivered", done.error_message
            assert recorder.seen == [Seen(in_memory=True, on_disk=False, recorded_path=None)]
            assert done.video_path is None


async def test_a_large_result_is_written_and_a_restart_posts_it_without_downloading_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.jobs.deliver.HOLD_IN_MEMORY_BYTES", 1000)  # results are larger
    async with FakeApixo(task_s=0.2) as fake:
        held = LookingRecorder(hold=True)
        async with apixo(tmp_path, fake, held) as h:
            held.store = h.store
            job = await h.request()
            await h.wait_state(job.id, "succeeded")
            for _ in range(200):
                if held.seen:
                    break
                await asyncio.sleep(0.02)
        (first,) = held.seen
        path = tmp_path / "work" / "videos" / f"{job.id}.mp4"  # the harness work_dir
        assert first == Seen(in_memory=False, on_disk=True, recorded_path=str(path))
        downloads = len(fake.requests_to("GET", "/files/"))
        assert downloads == 1
        # The restart finds the file the first process recorded and posts it.
        again = LookingRecorder()
        async with apixo(tmp_path, fake, again) as h2:
            again.store = h2.store
            done = await h2.wait_state(job.id, "delivered", "failed")
            assert done.state.value == "delivered", done.error_message
        assert again.seen == [Seen(in_memory=False, on_disk=True, recorded_path=str(path))]
        assert len(fake.requests_to("GET", "/files/")) == downloads
        task = fake.tasks[done.task_id or ""]
        assert again.posted[job.id] == make_mp4(float(task.duration), *task.video_size)
        assert not path.exists()  # removed once posted
