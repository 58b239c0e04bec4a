"""Apps -> Animate on a member's message, and the Remix button's form, through the fake
Discord: the form opens within Discord's 3 s, its answers run exactly like /animate and
Retry, and every refusal on the way is clear and costs nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.store import Job
from tests.bot.support import World, png, running_bot, settings_for, world
from tests.fakes.fake_discord.bodies import UploadedFile
from tests.fakes.fake_discord.models import Message


def member_message(w: World, files: list[tuple[bytes, str, str]], content: str = "look") -> Message:
    uploads = [UploadedFile(i, name, ctype, data) for i, (data, name, ctype) in enumerate(files)]
    return w.fd.store.create(w.channel, {"content": content}, uploads, author_id=w.member)


async def opened_form(w: World, interaction_id: int) -> dict[str, Any]:
    """The modal the bot answered with (callback type 9), within Discord's 3 s."""
    await w.fd.wait_for(lambda: w.fd.interaction(interaction_id).callbacks, 10)
    (answer,) = w.fd.interaction(interaction_id).callbacks
    assert answer.type == 9, f"expected a form, got callback type {answer.type}"
    assert answer.elapsed_s is not None and answer.elapsed_s < 3
    assert isinstance(answer.data, dict)
    return answer.data


def inputs(form: dict[str, Any]) -> list[dict[str, Any]]:
    return [inner for row in form["components"] for inner in row["components"]]


async def submit(w: World, form: dict[str, Any], answers: list[str], *, user: int,
                 message_id: int | None = None) -> int:
    values = {field["custom_id"]: value for field, value in zip(inputs(form), answers,
                                                                  strict=True)}
    payload = w.fd.builders.modal_submit(form["custom_id"], values, guild_id=w.guild,
                                         channel_id=w.channel, user_id=user,
                                         message_id=message_id)
    await w.fd.send_interaction(payload)
    return int(payload["id"])


async def use_animate(w: World, message: Message) -> int:
    payload = w.fd.builders.message_command("Animate", message.id, user_id=w.member)
    await w.fd.send_interaction(payload)
    return int(payload["id"])


async def test_animate_from_a_message_runs_like_animate(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        message = member_message(w, [(png(900, 600), "cat.png", "image/png")])
        form = await opened_form(w, await use_animate(w, message))
        assert [f["label"] for f in inputs(form)] == [
            "Prompt", "Length in seconds (optional)", "Orientation (optional)"]
        sent = await submit(w, form, ["the cat starts to dance", "", ""], user=w.member)
        (video,) = await w.wait_videos(1)
        (job,) = await w.settled(1)
        assert job.state.value == "delivered" and job.mode == "image-to-video"
        assert job.prompt == "the cat starts to dance" and job.user_id == w.member
        assert job.orientation == "landscape"  # the image's own shape
        assert w.replies_private(sent)
        assert video.attachments


async def test_a_message_without_an_image_is_refused_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        message = member_message(w, [(b"just words", "notes.txt", "text/plain")])
        sent = await use_animate(w, message)
        text = await w.wait_reply(sent, "no image")
        assert "Nothing was charged" in text and w.replies_private(sent)
        assert w.fd.interaction(sent).callbacks[0].type == 4  # an answer, not a form
        assert await w.bot.store.jobs_for(w.guild, None) == []


async def test_several_images_say_which_one_is_used(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        message = member_message(w, [(png(800, 600), "first.png", "image/png"),
                                     (png(600, 800), "second.png", "image/png")])
        form = await opened_form(w, await use_animate(w, message))
        assert "first of 2 images: first.png" in inputs(form)[0]["placeholder"]
        await submit(w, form, ["waves roll in", "", ""], user=w.member)
        (job,) = await w.settled(1)
        assert job.state.value == "delivered" and job.orientation == "landscape"


async def test_bad_answers_in_the_form_are_refused_clearly_at_no_cost(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        message = member_message(w, [(png(800, 600), "cat.png", "image/png")])
        form = await opened_form(w, await use_animate(w, message))
        sent = await submit(w, form, ["dance", "eight", ""], user=w.member)
        await w.wait_reply(sent, "whole number of seconds")
        form = await opened_form(w, await use_animate(w, message))
        sent = await submit(w, form, ["dance", "", "sideways"], user=w.member)
        await w.wait_reply(sent, "landscape or portrait")
        form = await opened_form(w, await use_animate(w, message))
        sent = await submit(w, form, ["dance", "5", ""], user=w.member)
        text = await w.wait_reply(sent, "not 5")
        assert "makes" in text and "Traceback" not in text
        assert await w.bot.store.jobs_for(w.guild, None) == []


async def remix_form(w: World, job: Job, video: Message, user: int) -> tuple[int, dict[str, Any]]:
    payload = w.fd.button(f"video:remix:{job.id}", video.id, user_id=user)
    await w.fd.send_interaction(payload)
    return int(payload["id"]), await opened_form(w, int(payload["id"]))


async def test_remix_opens_a_prefilled_form_and_charges_whoever_clicked(
    tmp_path: Path
) -> None:
    async with world(tmp_path) as w:
        await w.command("video", {"prompt": "a fox in snow", "duration": 4})
        (video,) = await w.wait_videos(1)
        (first,) = await w.settled(1)
        labels = [c.get("label") for row in video.components for c in row["components"]]
        assert labels == ["Retry", "Remix", "Delete"]
        other = w.fd.add_member(w.guild, name="other")
        _, form = await remix_form(w, first, video, other)
        assert [f.get("value") for f in inputs(form)] == ["a fox in snow", "4", "landscape"]
        await submit(w, form, ["a fox in the rain", "8", "portrait"], user=other,
                     message_id=video.id)
        await w.wait_videos(2)
        jobs = await w.settled(2)
        remix = next(j for j in jobs if j.id != first.id)
        assert (remix.prompt, remix.duration, remix.orientation, remix.user_id) == (
            "a fox in the rain", 8, "portrait", other)
        assert await w.bot.store.ledger_balance(remix.id) == 8  # charged to the clicker


async def test_remix_works_after_a_restart(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.command("video", {"prompt": "a paper boat", "duration": 4})
        (video,) = await w.wait_videos(1)
        (job,) = await w.settled(1)
        await w.bot.close()
        config = settings_for(tmp_path, w.fd)
        async with running_bot(config, w.fd) as bot:
            w.bot = bot
            _, form = await remix_form(w, job, video, w.member)
            assert inputs(form)[0].get("value") == "a paper boat"
            await submit(w, form, ["a paper boat at sunset", "", ""], user=w.member,
                         message_id=video.id)
            await w.wait_videos(2)
            jobs = await w.settled(2)
            assert {j.prompt for j in jobs} == {"a paper boat", "a paper boat at sunset"}


async def test_a_prompt_longer_than_the_form_is_never_cut(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        long_prompt = "a very long scene " * 250  # 4,500 characters
        await w.command("video", {"prompt": long_prompt.strip(), "duration": 4})
        (video,) = await w.wait_videos(1)
        (job,) = await w.settled(1)
        payload = w.fd.button(f"video:remix:{job.id}", video.id, user_id=w.member)
        await w.fd.send_interaction(payload)
        text = await w.wait_reply(int(payload["id"]), "more than the Remix form holds")
        assert "nothing was cut or charged" in text
        assert all(c.type != 9 for c in w.fd.interaction(payload["id"]).callbacks)
        assert len(await w.bot.store.jobs_for(w.guild, None)) == 1
