"""The real bot with the models after Sora: /video and /animate on live APIXO models, real
lengths charged, retired models refused at no cost, an owner's retired MODEL kept."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from tests.bot.support import decodes_as_mp4, png, world
from tests.bot.test_moderation import moderate
from tests.fakes.apixo import FakeApixo

pytestmark = pytest.mark.timeout(120)


def live_world(tmp_path: Path, fake: FakeApixo, **settings: Any):  # type: ignore[no-untyped-def]
    settings.setdefault("model", "")  # unset: the provider's default
    return world(tmp_path, provider="apixo", apixo_api_key=fake.api_key,
                 apixo_base_url=fake.api_base, **settings)


async def test_video_on_live_models_charges_real_lengths(tmp_path: Path) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, live_world(tmp_path, fake) as w:
        assert w.bot.settings.model == "veo-3-1-fast"  # MODEL unset: a live default
        runs: list[tuple[dict[str, Any], str, dict[str, Any], int]] = [
            ({}, "veo-3-1", {"mode": "fast", "generationType": "TEXT_2_VIDEO",
                             "aspect_ratio": "16:9"}, 8),
            ({"model": "wan-2-5-video", "duration": 10, "orientation": "portrait"},
             "wan-2-5-video", {"mode": "text-to-video", "duration": 10, "aspect_ratio": "9:16",
                               "resolution": "720p"}, 10),
            ({"model": "hailuo-2-3-pro"}, "hailuo-2-3", {"mode": "pro-text-to-video"}, 5),
            ({"model": "kling-2-1", "duration": 5}, "kling-2-1",
             {"mode": "master-text-to-video", "duration": 5, "aspect_ratio": "16:9"}, 5),
        ]
        for count, (options, api_model, expected, seconds) in enumerate(runs, start=1):
            await w.command("video", {"prompt": "a heron takes off", **options})
            videos = await w.wait_videos(count)
            assert decodes_as_mp4(videos[-1].attachments[0].data) == pytest.approx(
                seconds, abs=0.6)
            task = list(fake.tasks.values())[-1]
            assert task.model == api_model
            assert task.body["input"] == {"prompt": "a heron takes off", **expected}
            job = (await w.settled(count))[0]
            assert job.seconds == seconds and job.duration == seconds
            assert await w.bot.store.ledger_balance(job.id) == seconds


async def test_animate_with_an_end_frame_on_kling(tmp_path: Path) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, live_world(tmp_path, fake) as w:
        start = w.fd.host_file(png(1000, 700), "start.png", "image/png")
        end = w.fd.host_file(png(1000, 700), "end.png", "image/png")
        await w.command("animate", {"prompt": "the door opens", "model": "kling-2-1",
                                    "duration": 10},
                        attachments={"image": start, "end_image": end})
        await w.wait_videos(1)
        (task,) = fake.tasks.values()
        inp = task.body["input"]
        assert inp["mode"] == "pro-image-to-video" and len(inp["image_urls"]) == 2
        assert task.duration == 10


@pytest.mark.parametrize(
    ("options", "attachments", "needle"),
    [
        ({"prompt": "a fox", "model": "sora-2"}, False, "`sora-2` is retired"),
        ({"prompt": "a fox", "duration": 4}, False, "makes 8-second videos"),
        ({"prompt": "a fox", "model": "hailuo-2-3", "negative_prompt": "rain"}, False,
         "takes no negative prompt"),
        ({"prompt": "a fox", "model": "kling-2-5-turbo-pro", "seed": 3}, False, "takes no seed"),
        ({"prompt": "a fox", "model": "wan-2-5-video"}, True, "takes no end frame"),
    ],
)
async def test_what_a_model_does_not_make_is_refused_at_no_cost(
    tmp_path: Path, options: dict[str, Any], attachments: bool, needle: str
) -> None:
    async with FakeApixo() as fake, live_world(tmp_path, fake) as w:
        if attachments:
            files = {"image": w.fd.host_file(png(800, 600), "a.png", "image/png"),
                     "end_image": w.fd.host_file(png(800, 600), "b.png", "image/png")}
            sent = await w.command("animate", options, attachments=files)
        else:
            sent = await w.command("video", options)
        text = await w.wait_reply(sent, needle)
        if "retired" in needle:
            assert "`veo-3-1-fast`" in text and "`sora-2-pro`" not in text
        assert await w.bot.store.jobs_for(w.guild, None) == []
        assert await w.bot.store.ledger_rows() == []
        assert fake.requests == []


async def test_an_owner_s_retired_model_warns_once_and_refunds_when_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.app")
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, live_world(
        tmp_path, fake, model="sora-2"
    ) as w:
        warnings = [r for r in caplog.records if r.name == "bot.app"
                    and "retired" in r.getMessage()]
        assert len(warnings) == 1 and "veo-3-1-fast" in warnings[0].getMessage()
        fake.retired_models.add("sora-2")  # the reseller stopped relaying it
        sent = await w.command("video", {"prompt": "a fox", "duration": 4})
        (job,) = await w.settled(1)
        assert job.state.value == "failed"
        assert await w.bot.store.ledger_balance(job.id) == 0  # refunded
        await w.wait_reply(sent, "no longer offered")


async def test_the_longest_duration_rule_counts_the_length_a_model_makes(
    tmp_path: Path
) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, live_world(tmp_path, fake) as w:
        await moderate(w, "settings", {"max_duration": 5, "allow_model": "hailuo-2-3-pro"},
                       needle="updated")
        await moderate(w, "settings", {"allow_model": "veo-3-1-fast"}, needle="updated")
        sent = await w.command("video", {"prompt": "a fox"})  # veo-3-1-fast: always 8 s
        await w.wait_reply(sent, "limited to 5 s")
        assert fake.requests == []
        await w.command("video", {"prompt": "a fox", "model": "hailuo-2-3-pro"})
        (job,) = await w.settled(1)
        assert job.model == "hailuo-2-3-pro" and job.seconds == 5


async def test_animate_and_retry_keep_the_end_frame_negative_prompt_and_seed(
    tmp_path: Path
) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, live_world(
        tmp_path, fake, public_base_url="http://127.0.0.1:1"
    ) as w:
        w.bot.webhook.public_base_url = f"http://127.0.0.1:{w.bot.webhook.port}"
        start = w.fd.host_file(png(1000, 700), "start.png", "image/png")
        end = w.fd.host_file(png(1000, 700), "end.png", "image/png")
        await w.command("animate", {"prompt": "the door opens", "model": "wan-2-5-video",
                                    "negative_prompt": "blur", "seed": 5},
                        attachments={"image": start})
        await w.wait_videos(1)
        (task,) = fake.tasks.values()
        assert task.body["input"]["negative_prompt"] == "blur"
        assert task.body["input"]["seed"] == 5
        await w.command("animate", {"prompt": "the door opens", "model": "kling-2-5-turbo-pro",
                                    "negative_prompt": "blur"},
                        attachments={"image": start, "end_image": end})
        video = (await w.wait_videos(2))[-1]
        first = list(fake.tasks.values())[-1].body["input"]
        assert first["negative_prompt"] == "blur" and len(first["image_urls"]) == 2
        job_id = video.embeds[0]["footer"]["text"].removeprefix("job ")
        click = w.fd.button(f"video:retry:{job_id}", video.id, user_id=w.member)
        await w.fd.send_interaction(click)
        await w.wait_reply(int(click["id"]), "Done")
        await w.wait_videos(3)
        again = list(fake.tasks.values())[-1]
        assert again.body["input"]["negative_prompt"] == "blur"
        assert len(again.body["input"]["image_urls"]) == 2 and again.image_info is not None


class _Namespace:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


@pytest.mark.parametrize(("model", "values"), [
    (None, [8]), ("wan-2-5-video", [5, 10]), ("hailuo-2-3", [6, 10]),
    ("hailuo-2-3-pro", [5]), ("no-such-model", [8]),
])
async def test_duration_suggestions_follow_the_chosen_model(
    model: str | None, values: list[int]
) -> None:
    from cogs.video import Video

    config = Settings(_env_file=None, provider="apixo", apixo_api_key="k")  # type: ignore[call-arg]
    cog = Video(_Namespace(settings=config))  # type: ignore[arg-type]
    interaction = _Namespace(namespace=_Namespace(model=model))
    choices = await cog.duration_names(interaction, "")  # type: ignore[arg-type]
    assert [c.value for c in choices] == values


async def test_moderators_may_drop_but_not_allow_a_retired_model(tmp_path: Path) -> None:
    async with FakeApixo() as fake, live_world(tmp_path, fake) as w:
        text = await moderate(w, "settings", {"allow_model": "sora-2"}, needle="no model")
        assert "`veo-3-1-fast`" in text and "`sora-2-pro`" not in text
        # an allow-list from the Sora days still names sora-2 and veo-3-1
        await w.bot.store.edit_policy(
            w.guild, lambda p: p.model_copy(update={"models": ("sora-2", "veo-3-1")}), None)
        await moderate(w, "settings", {"remove_model": "sora-2"}, needle="updated")
        assert (await w.bot.store.get_policy(w.guild)).models == ("veo-3-1",)
        assert fake.requests == []
