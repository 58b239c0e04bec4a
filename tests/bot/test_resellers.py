"""fal.ai and Replicate end to end through the fake Discord: /video and /animate (a start
frame and, where the model takes one, an end frame) on every model family at each
reseller; signed webhooks that carry the result; unsigned, wrongly signed, stale and
tampered ones refused; sound on and off; /cancel of a job at the provider."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from bot.catalog import Shape, get_model, models_for
from tests.bot.support import World, png, world
from tests.fakes.common import FakeProvider
from tests.fakes.fal import FakeFal
from tests.fakes.media import make_mp4_with_sound
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.timeout(180)


def settings_for(name: str, fake: FakeProvider) -> dict[str, Any]:
    values: dict[str, Any] = {"provider": name, f"{name}_api_key": fake.api_key,
                              f"{name}_base_url": fake.base_url, "model": ""}
    if isinstance(fake, FakeFal):
        values["fal_jwks_url"] = fake.jwks_url
    return values


@contextlib.asynccontextmanager
async def reseller_world(tmp_path: Path, name: str, *, callbacks: bool = False,
                         **settings: Any) -> AsyncIterator[tuple[World, FakeProvider]]:
    cls = FakeFal if name == "fal" else FakeReplicate
    async with cls(queue_s=0.05, task_s=0.3) as fake, world(
        tmp_path, **settings_for(name, fake), default_quota_seconds=10_000, **settings,
    ) as w:
        if callbacks:  # the port is known once the webhook server listens
            w.bot.webhook.public_base_url = f"http://127.0.0.1:{w.bot.webhook.port}"
        yield w, fake


def task_input(fake: FakeProvider) -> dict[str, Any]:
    task = list(fake.tasks.values())[-1]
    body: dict[str, Any] = task.body
    return body["input"] if isinstance(fake, FakeReplicate) else body


@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_every_family_in_every_shape_it_offers(tmp_path: Path, name: str) -> None:
    async with reseller_world(tmp_path, name) as (w, fake):
        made = 0
        for spec in models_for(name):
            for shape in spec.shapes:
                options: dict[str, Any] = {"prompt": f"a heron, {spec.id}", "model": spec.id}
                attachments: dict[str, Any] = {}
                if shape is not Shape.TEXT:
                    attachments["image"] = w.fd.host_file(png(1280, 720), "a.png", "image/png")
                if shape is Shape.FRAMES:
                    attachments["end_image"] = w.fd.host_file(png(1280, 720), "b.png",
                                                              "image/png")
                command = "video" if shape is Shape.TEXT else "animate"
                await w.command(command, options, attachments=attachments or None)
                made += 1
                await w.wait_videos(made, within=30)
                task = list(fake.tasks.values())[-1]
                assert task.model == spec.endpoint_for(shape), (spec.id, shape)
                if shape is Shape.FRAMES:
                    start, end = spec.image_fields_for(shape)
                    assert start in task_input(fake) and end in task_input(fake)
        jobs = await w.settled(made)
        assert all(job.state.value == "delivered" for job in jobs)
        assert all(job.provider == name for job in jobs)


@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_a_verified_webhook_carries_the_result(tmp_path: Path, name: str) -> None:
    async with reseller_world(tmp_path, name, callbacks=True, poll_first_s=60,
                              poll_interval_s=60) as (w, fake):
        await w.command("video", {"prompt": "a fox", "duration": 4})
        await w.wait_videos(1, within=20)  # no poll would come for a minute
        status_reads = [r for r in fake.requests if r.method == "GET" and "/files/" not in
                        r.path and "secret" not in r.path]
        assert status_reads == []  # the verified webhook said it all
        assert any(c.status == 200 for c in fake.callbacks_sent)


@pytest.mark.parametrize("mode", ["none", "wrong", "stale", "tampered"])
@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_untrusted_webhooks_are_refused_and_change_nothing(
    tmp_path: Path, name: str, mode: str
) -> None:
    async with reseller_world(tmp_path, name, callbacks=True, poll_first_s=2.0,
                              poll_interval_s=0.5) as (w, fake):
        fake.webhook_signing = mode  # type: ignore[attr-defined]
        await w.command("video", {"prompt": "a fox", "duration": 4})
        await fake.wait_until(lambda: any(c.status for c in fake.callbacks_sent), 10)
        assert {c.status for c in fake.callbacks_sent if c.status} <= {400, 401}
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert "pushed_status" not in job.context
        await w.wait_videos(1, within=20)  # the poll, the safety net, still delivers


@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_sound_on_and_off_is_sent_and_priced(tmp_path: Path, name: str) -> None:
    async with reseller_world(tmp_path, name,
                              model_prices={"replicate/veo-3-1-fast": 0.10,
                                            "replicate/veo-3-1-fast+audio": 0.15}) as (w, fake):
        spec = get_model(name, "veo-3-1-fast")
        for count, audio in enumerate((True, False), start=1):
            await w.command("video", {"prompt": "rain", "duration": 8, "audio": audio})
            await w.wait_videos(count)
            assert task_input(fake)["generate_audio"] is audio
        jobs = sorted(await w.settled(2), key=lambda j: j.created_at)
        assert [j.context["options"]["audio"] for j in jobs] == [True, False]
        assert [j.price_micros for j in jobs] == [1_200_000, 800_000]
        await w.command("video", {"prompt": "rain", "duration": 8})  # the default: on
        await w.wait_videos(3)
        assert task_input(fake)["generate_audio"] is True
        refused = await w.command("video", {"prompt": "rain", "model": "kling-2-5-turbo-pro",
                                            "duration": 5, "audio": True})
        text = await w.refused(refused, "does not let you choose sound")
        assert "veo-3-1" in text and spec.takes_audio


@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_cancel_a_job_at_the_provider(tmp_path: Path, name: str) -> None:
    async with reseller_world(tmp_path, name) as (w, fake):
        fake.queue_s, fake.task_s = 30.0, 60.0  # queued at the provider for a while
        await w.command("video", {"prompt": "a slow fox", "duration": 4})
        await fake.wait_until(lambda: fake.submits_accepted == 1)
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        await w.fd.wait_for(lambda: w.bot.jobs._tasks, 5)
        for _ in range(100):
            job = await w.bot.store.job(job.id) or job
            if job.state.value == "submitted":
                break
            await asyncio.sleep(0.05)
        cancel = await w.command("cancel", {"job": job.id[:8]})
        said = await w.wait_reply(cancel, job.id[:8])
        assert "refunded" in said
        done = await w.bot.store.job(job.id)
        for _ in range(100):
            done = await w.bot.store.job(job.id)
            if done is not None and done.terminal:
                break
            await asyncio.sleep(0.1)
        assert done is not None and done.state.value == "cancelled"
        assert done.charge.value == "refunded"
        assert await w.bot.store.ledger_balance(job.id) == 0
        assert w.videos() == []


async def test_the_posted_video_keeps_its_sound(tmp_path: Path) -> None:
    """Veo with sound at fal: the posted file is the provider's own bytes when it fits the
    channel, and keeps a sound track when it had to be shrunk to fit."""
    async with reseller_world(tmp_path, "fal") as (w, fake):
        small = make_mp4_with_sound(2.0)
        fake.video_bytes = small
        await w.command("video", {"prompt": "rain on a roof", "duration": 8, "audio": True})
        (posted,) = await w.wait_videos(1)
        assert posted.attachments[0].data == small
        big = make_mp4_with_sound(2.0, noisy=True)
        tight = w.fd.add_guild("Small uploads", upload_limit=2 * 1024 * 1024)
        channel = w.fd.text_channels(tight)[0]
        member = w.fd.add_member(tight, name="someone")
        fake.video_bytes = big
        await w.fd.send_interaction(w.fd.slash(
            "video", {"prompt": "rain, loud", "duration": 8, "audio": True}, guild_id=tight,
            channel_id=channel, user_id=member))
        (shrunk,) = await w.fd.wait_for(lambda: w.videos(channel), 60)
        data = shrunk.attachments[0].data
        assert len(data) < len(big) and len(data) <= 2 * 1024 * 1024
        with av.open(io.BytesIO(data)) as container:
            assert container.streams.audio and container.streams.video
            sound = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(sound))
        assert abs(samples / (sound.codec_context.sample_rate or 48_000) - 2.0) < 0.2


async def test_retry_keeps_the_sound_choice(tmp_path: Path) -> None:
    async with reseller_world(tmp_path, "replicate",
                              model_prices={"replicate/veo-3-1": 0.2}) as (w, fake):
        await w.command("video", {"prompt": "quiet rain", "model": "veo-3-1", "duration": 6,
                                  "audio": False})
        (video,) = await w.wait_videos(1)
        job_id = video.embeds[0]["footer"]["text"].removeprefix("job ")
        await w.fd.send_interaction(w.fd.button(f"video:retry:{job_id}", video.id,
                                                user_id=w.moderator))
        await w.wait_videos(2)
        assert [t.body["input"]["generate_audio"] for t in fake.tasks.values()] == [False,
                                                                                   False]
        jobs = await w.settled(2)
        assert {j.price_micros for j in jobs} == {1_200_000}
