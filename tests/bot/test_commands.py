"""The real bot against the fake Discord: /video, /animate, quotas, refusals, buttons."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bot.support import decodes_as_mp4, eventually, png, world
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import Perm
from tests.fakes.media import write_noise_video
from tests.fakes.pixazo import FakePixazo

pytestmark = pytest.mark.timeout(90)


async def test_video_in_the_sandbox_posts_one_mp4(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        interaction = await w.command("video", {"prompt": "a red fox in snow", "duration": 4})
        assert await w.acked(interaction) < 3
        (video,) = await w.wait_videos(1)
        assert decodes_as_mp4(video.attachments[0].data) == pytest.approx(4, abs=0.5)
        assert video.author_id == w.fd.bot_user_id
        embed = video.embeds[0]
        assert "a red fox in snow" in embed["description"]
        assert embed["footer"]["text"].startswith("job ")
        assert f"<@{w.member}>" in video.content
        assert [str(u) for u in video.allowed_mentions.get("users", [])] == [str(w.member)]
        labels = [c["label"] for row in video.components for c in row["components"]]
        assert labels == ["Retry", "Remix", "Delete"]
        await asyncio.sleep(0.3)
        assert len(w.videos()) == 1
        # The original response became a status embed that ends as done.
        await w.wait_reply(interaction, "Done")


@pytest.mark.parametrize("fake_cls", [FakeApixo, FakeAivideoapi, FakePixazo])
async def test_video_on_each_provider(tmp_path: Path, fake_cls: type) -> None:
    async with fake_cls() as fake:
        name = fake_cls.__name__.removeprefix("Fake").lower()
        base = fake.api_base if name == "apixo" else fake.base_url
        async with world(tmp_path, provider=name, **{f"{name}_api_key": fake.api_key,
                                                       f"{name}_base_url": base}) as w:
            await w.command("video", {"prompt": "a lighthouse at dusk", "duration": 8})
            (video,) = await w.wait_videos(1)
            assert decodes_as_mp4(video.attachments[0].data) == pytest.approx(8, abs=0.5)
            assert fake.submits_accepted == 1


async def test_animate_on_pixazo_sends_a_fitted_image(tmp_path: Path) -> None:
    async with FakePixazo() as fake, world(
        tmp_path, provider="pixazo", pixazo_api_key=fake.api_key, pixazo_base_url=fake.base_url
    ) as w:
        url = w.fd.host_file(png(1000, 700), "photo.png", "image/png")
        await w.command("animate", {"prompt": "waves roll in"}, attachments={"image": url})
        (video,) = await w.wait_videos(1)
        decodes_as_mp4(video.attachments[0].data)
        (task,) = fake.tasks.values()
        assert task.image_info is not None
        assert (task.image_info.width, task.image_info.height) == (1280, 720)


@pytest.mark.parametrize("public", [False, True], ids=["attachment-url", "webhook-url"])
async def test_animate_on_apixo_hands_over_a_url(tmp_path: Path, public: bool) -> None:
    async with FakeApixo() as fake:
        extra = {"public_base_url": "http://127.0.0.1:1"} if public else {}
        async with world(tmp_path, provider="apixo", apixo_api_key=fake.api_key,
                         apixo_base_url=fake.api_base, **extra) as w:
            if public:  # the real port is known only once the server listens
                w.bot.webhook.public_base_url = f"http://127.0.0.1:{w.bot.webhook.port}"
            url = w.fd.host_file(png(720, 1280), "tall.png", "image/png")
            await w.command("animate", {"prompt": "she smiles"}, attachments={"image": url})
            (video,) = await w.wait_videos(1)
            assert decodes_as_mp4(video.attachments[0].data) > 0
            (task,) = fake.tasks.values()
            assert task.body["input"]["aspect_ratio"] == "portrait"  # the image's own
            sent = task.body["input"]["image_urls"][0]
            assert ("/images/" in sent) if public else sent.startswith(w.fd.origin)


async def test_quota_exhaustion_refuses_without_a_provider_call(tmp_path: Path) -> None:
    async with FakeApixo() as fake, world(
        tmp_path, provider="apixo", apixo_api_key=fake.api_key, apixo_base_url=fake.api_base,
        default_quota_seconds=8,
    ) as w:
        await w.command("video", {"prompt": "first", "duration": 8})
        await w.wait_videos(1)
        second = await w.command("video", {"prompt": "second", "duration": 4})
        text = await w.wait_reply(second, "left")
        assert "0 s of video left" in text
        assert w.replies_private(second), "refusals are for the member's eyes only"
        await asyncio.sleep(0.3)
        assert fake.submits_accepted == 1 and len(w.videos()) == 1
        # The bot keeps working: a moderator raises the quota and the member goes again.
        raised = await w.command("quota", {"seconds": 60}, subcommand="set", user=w.moderator)
        await w.wait_reply(raised, "Quota updated")
        third = await w.command("video", {"prompt": "third", "duration": 4})
        await w.acked(third)
        await w.wait_videos(2)


async def test_non_moderator_cannot_set_the_quota(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        attempt = await w.command("quota", {"seconds": 9999}, subcommand="set")
        text = await w.refused(attempt, "Manage Server")
        assert "You need the Manage Server permission" in text
        assert not await w.bot.store.has_quota(w.guild)
        shown = await w.command("quota", subcommand="show")
        await w.acked(shown)


@pytest.mark.parametrize(
    ("attachment", "needle"),
    [
        ((b"just some text, honest", "photo.png", "image/png"), "not a JPEG, PNG or WebP"),
        ((png(120, 90), "tiny.png", "image/png"), "too small"),
        ((png(1500, 300), "strip.png", "image/png"), "aspect"),
    ],
)
async def test_bad_images_are_refused_at_no_cost(
    tmp_path: Path, attachment: tuple[bytes, str, str], needle: str
) -> None:
    async with world(tmp_path) as w:
        url = w.fd.host_file(*attachment)
        attempt = await w.command("animate", {"prompt": "move"}, attachments={"image": url})
        await w.refused(attempt, needle)
        assert await w.bot.store.jobs_for(w.guild, None) == []


async def test_too_large_attachment_is_refused_before_download(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        url = w.fd.host_file(b"\x89PNG" + b"\0" * (21 * 1024 * 1024), "huge.png", "image/png")
        attempt = await w.command("animate", {"prompt": "move"}, attachments={"image": url})
        text = await w.wait_reply(attempt, "MB")
        assert "20 MB" in text
        assert not w.fd.downloads


async def test_over_long_prompt_is_refused(tmp_path: Path) -> None:
    async with FakeAivideoapi() as fake, world(
        tmp_path, provider="aivideoapi", aivideoapi_api_key=fake.api_key,
        aivideoapi_base_url=fake.base_url,
    ) as w:
        attempt = await w.command("video", {"prompt": "x" * 5001})
        text = await w.wait_reply(attempt, "characters")
        assert "5,000" in text
        assert fake.requests == []


async def test_missing_channel_permissions_refuse_before_charging(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.fd.set_bot_channel_permissions(w.channel, deny=Perm.ATTACH_FILES)
        attempt = await w.command("video", {"prompt": "a fox"})
        await w.refused(attempt, "Attach Files")
        assert await w.bot.store.jobs_for(w.guild, None) == []


async def test_oversized_video_is_shrunk_to_fit(tmp_path: Path) -> None:
    async with FakeApixo() as fake:
        write_noise_video(tmp_path / "noise.mp4", seconds=4, size=(640, 360))
        big = (tmp_path / "noise.mp4").read_bytes()
        fake.video_bytes = big
        async with world(tmp_path, provider="apixo", apixo_api_key=fake.api_key,
                         apixo_base_url=fake.api_base) as w:
            limit = len(big) // 3
            assert limit > 1024 * 1024  # a real squeeze, well above the safety margin
            await w.command("video", {"prompt": "busy city"}, attachment_size_limit=limit)
            (video,) = await w.wait_videos(1, within=60)
            posted = video.attachments[0].data
            assert len(posted) <= limit
            assert decodes_as_mp4(posted) == pytest.approx(4, abs=0.5)


async def test_delete_and_retry_buttons(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.command("video", {"prompt": "a fox", "duration": 4})
        (video,) = await w.wait_videos(1)
        job_id = video.embeds[0]["footer"]["text"].removeprefix("job ")
        stranger = w.fd.add_member(w.guild, name="stranger")
        click = w.fd.button(f"video:delete:{job_id}", video.id, user_id=stranger)
        await w.fd.send_interaction(click)
        await w.refused(int(click["id"]), "Only the member who asked for this video")
        assert len(w.videos()) == 1  # not theirs to delete
        await w.fd.send_interaction(w.fd.button(f"video:retry:{job_id}", video.id,
                                                user_id=w.member))
        await w.wait_videos(2)
        await w.fd.send_interaction(
            w.fd.button(f"video:delete:{job_id}", video.id, user_id=w.member))
        await eventually(lambda: len(w.videos()) == 1)
        jobs = await w.settled(2)
        assert len(jobs) == 2 and all(j.state.value == "delivered" for j in jobs)


async def test_quota_show_and_usage(tmp_path: Path) -> None:
    async with world(tmp_path, default_quota_seconds=100) as w:
        await w.command("video", {"prompt": "a fox", "duration": 8})
        await w.wait_videos(1)
        shown = await w.command("quota", subcommand="show")
        await w.wait_reply(shown, "92 s left of 100 s")
        usage = await w.command("usage")
        text = await w.wait_reply(usage, "8 s of video in 1 job")
        assert f"<@{w.member}>" in text and "$0.00" in text
