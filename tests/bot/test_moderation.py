"""Moderator controls end to end: the real bot against the fake Discord and APIXO emulator.

Every refusal test checks the reason the member is told, and that nothing was written or
spent: no job row, no ledger row (so no quota change) and no request to the provider.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.store import DELETED_PROMPT, JobState
from cogs.jobs import cancel_text
from tests.bot.support import World, eventually, png, world
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import Perm
from tests.fakes.fake_discord.models import Message

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def moderated(
    tmp_path: Path, fake: FakeApixo | None = None, **settings: Any
) -> AsyncIterator[tuple[World, FakeApixo]]:
    async with contextlib.AsyncExitStack() as stack:
        if fake is None:
            fake = await stack.enter_async_context(FakeApixo())
        w = await stack.enter_async_context(world(
            tmp_path, provider="apixo", apixo_api_key=fake.api_key,
            apixo_base_url=fake.api_base, **settings,
        ))
        yield w, fake


@dataclass(frozen=True)
class Spent:
    jobs: int
    ledger: int
    provider_submits: int  # create requests (status polls of earlier jobs may go on)


async def spent(w: World, fake: FakeApixo) -> Spent:
    return Spent(
        jobs=len(await w.bot.store.jobs_for(w.guild, None, limit=1000)),
        ledger=len(await w.bot.store.ledger_rows()),
        provider_submits=sum(1 for r in fake.requests if r.method == "POST"),
    )


async def refused(w: World, fake: FakeApixo, interaction: int, needle: str) -> str:
    """Wait for the refusal; check that it cost nothing and touched no provider."""
    before = await spent(w, fake)
    text = await w.wait_reply(interaction, needle)
    await asyncio.sleep(0.3)  # anything the refusal could have started would show by now
    assert await spent(w, fake) == before
    return text


async def moderate(w: World, name: str, options: dict[str, Any] | None = None, *,
                   subcommand: str | None = None, needle: str = "") -> str:
    kw: dict[str, Any] = {"user": w.moderator}
    if subcommand:
        kw["subcommand"] = subcommand
    interaction = await w.command(name, options or {}, **kw)
    await w.fd.wait_for(lambda: w.reply_text(interaction) and needle in w.reply_text(
        interaction), 10)
    return w.reply_text(interaction)


def audit_lines(w: World, channel: int) -> list[Message]:
    return [m for m in w.fd.messages(channel, source="channel") if m.author_id ==
            w.fd.bot_user_id]


# -- where, who, which model, how long --------------------------------------------------


async def test_a_disallowed_channel_is_refused_and_the_change_is_live(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        videos = w.fd.add_text_channel(w.guild, "videos")
        text = await moderate(w, "settings", {"allow_channel": videos}, needle="updated")
        assert f"<#{videos}>" in text
        attempt = await w.command("video", {"prompt": "a fox in the snow"})
        text = await refused(w, fake, attempt, "not one where videos can be made")
        assert f"try <#{videos}>" in text
        # No restart: the allowed channel works at once.
        await w.command("video", {"prompt": "a fox in the snow"}, channel_id=videos)
        await eventually(lambda: len(w.videos(videos)) == 1, 30)
        assert fake.submits_accepted == 1


async def test_a_member_without_an_allowed_role_is_refused(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        artists = w.fd.add_role(w.guild, "Artists")
        await moderate(w, "settings", {"allow_role": artists}, needle="updated")
        attempt = await w.command("video", {"prompt": "a lighthouse"})
        text = await refused(w, fake, attempt, "one of these roles")
        assert f"<@&{artists}>" in text
        artist = w.fd.add_member(w.guild, name="artist", roles=[artists])
        await w.command("video", {"prompt": "a lighthouse"}, user=artist)
        await w.wait_videos(1)


async def test_models_and_the_longest_duration_are_enforced(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        await moderate(w, "settings", {"allow_model": "sora-2", "max_duration": 8},
                       needle="updated")
        attempt = await w.command("video", {"prompt": "a fox", "model": "veo-3-1-fast"})
        text = await refused(w, fake, attempt, "not allowed in this server")
        assert "`veo-3-1-fast`" in text and "`sora-2`" in text
        attempt = await w.command("video", {"prompt": "a fox", "duration": 12})
        text = await refused(w, fake, attempt, "limited to 8 s")
        assert "Videos here are limited to 8 s" in text
        await w.command("video", {"prompt": "a fox", "duration": 8})
        await w.wait_videos(1)


# -- who is blocked, what is blocked -------------------------------------------------------


async def test_a_blocked_member_is_refused_until_unblocked(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        text = await moderate(w, "block", {"member": w.member, "reason": "spam"},
                              needle="blocked")
        assert f"<@{w.member}> is blocked" in text
        attempt = await w.command("video", {"prompt": "a red fox"})
        text = await refused(w, fake, attempt, "blocked from making videos")
        assert "Nothing was charged" in text
        await moderate(w, "unblock", {"member": w.member}, needle="again")
        await w.command("video", {"prompt": "a red fox"})
        await w.wait_videos(1)


async def test_the_rules_also_guard_retry_and_animate(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        await w.command("video", {"prompt": "a red fox", "duration": 4})
        (video,) = await w.wait_videos(1)
        job_id = video.embeds[0]["footer"]["text"].removeprefix("job ")
        await moderate(w, "block", {"member": w.member}, needle="blocked")
        before = await spent(w, fake)
        click = w.fd.button(f"video:retry:{job_id}", video.id, user_id=w.member)
        await w.fd.send_interaction(click)
        await w.wait_reply(int(click["id"]), "blocked from making videos")
        url = w.fd.host_file(png(800, 600), "photo.png", "image/png")
        attempt = await w.command("animate", {"prompt": "move"}, attachments={"image": url})
        await w.wait_reply(attempt, "blocked from making videos")
        await asyncio.sleep(0.3)
        assert await spent(w, fake) == before
        assert not w.fd.downloads  # refused before the image was even fetched


@pytest.mark.parametrize("prompt", [
    "a very bаd fox",  # Cyrillic а
    "a very ｂａｄ fox",  # fullwidth
    "a very b.a.d fox",  # dotted
    "a very B A D fox",  # spaced capitals
    "a very bád fox",  # accent
])
async def test_a_blocklisted_word_in_look_alike_letters_is_refused(
    tmp_path: Path, prompt: str
) -> None:
    async with moderated(tmp_path) as (w, fake):
        await moderate(w, "blocklist", {"term": "bad"}, subcommand="add", needle="Added")
        attempt = await w.command("video", {"prompt": prompt})
        text = await refused(w, fake, attempt, "a term this server does not allow")
        assert "bad" not in text.lower() and "bаd" not in text  # the term is not repeated
        # Whole words only: "badge" is fine.
        await w.command("video", {"prompt": "a fox with a shiny badge"})
        await w.wait_videos(1)


async def test_blocklist_patterns_are_checked_and_a_pathological_one_is_rejected(
    tmp_path: Path,
) -> None:
    async with moderated(tmp_path) as (w, fake):
        text = await moderate(w, "blocklist", {"term": "(a|aa)+$", "kind": "pattern"},
                              subcommand="add", needle="too long")
        assert "stall" in text
        text = await moderate(w, "blocklist", {"term": "x*", "kind": "pattern"},
                              subcommand="add", needle="empty prompt")
        assert await w.bot.store.block_entries(w.guild) == []
        await moderate(w, "blocklist", {"term": r"gr[a@]pes? of wrath", "kind": "pattern"},
                       subcommand="add", needle="Added")
        attempt = await w.command("video", {"prompt": "The GRAPE of W.R.A.T.H."})
        await refused(w, fake, attempt, "a term this server does not allow")
        listing = await moderate(w, "blocklist", subcommand="list", needle="Patterns")
        assert "||`gr[a@]pes? of wrath`||" in listing
        await moderate(w, "blocklist", {"term": r"gr[a@]pes? of wrath"}, subcommand="remove",
                       needle="Removed")
        await w.command("video", {"prompt": "The GRAPE of W.R.A.T.H."})
        await w.wait_videos(1)


# -- how often -----------------------------------------------------------------------------


async def test_a_cooldown_refuses_with_when_to_ask_again(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        await moderate(w, "settings", {"cooldown": 3600}, needle="updated")
        await w.command("video", {"prompt": "first fox"})
        await w.wait_videos(1)
        (job,) = await w.settled(1)  # recorded (and charged) just after the post shows
        assert job.state is JobState.DELIVERED
        attempt = await w.command("video", {"prompt": "second fox"})
        text = await refused(w, fake, attempt, "Slow down")
        assert f"<t:{int(job.created_at + 3600) + 1}:R>" in text
        # Another member is not held up, and a moderator can lift the cooldown live.
        other = w.fd.add_member(w.guild, name="other")
        await w.command("video", {"prompt": "other fox"}, user=other)
        await w.wait_videos(2)
        await moderate(w, "settings", {"cooldown": 0}, needle="updated")
        await w.command("video", {"prompt": "third fox"})
        await w.wait_videos(3)


async def test_most_queued_jobs_per_member(tmp_path: Path) -> None:
    async with FakeApixo(task_s=60) as fake, moderated(tmp_path, fake) as (w, _):
        await moderate(w, "settings", {"max_queued": 1}, needle="updated")
        await w.command("video", {"prompt": "slow fox"})
        await eventually(lambda: fake.submits_accepted == 1)
        attempt = await w.command("video", {"prompt": "another fox"})
        text = await refused(w, fake, attempt, "on the way")
        assert "/cancel" in text


# -- /jobs and /cancel -----------------------------------------------------------------------


async def test_a_cancelled_queued_job_is_refunded(tmp_path: Path) -> None:
    async with world(tmp_path, sandbox_delay_s=60) as w:
        for n in range(5):  # the sandbox renders 4 at once: the fifth waits in line
            await w.command("video", {"prompt": f"fox number {n}"})
        await eventually(lambda: len(w.bot.jobs._active()) == 5)

        async def states() -> list[JobState]:
            return [j.state for j in await w.bot.store.jobs_for(w.guild, None)]

        for _ in range(100):
            if sorted(await states()).count(JobState.SUBMITTED) == 4:
                break
            await asyncio.sleep(0.05)
        queued = [j for j in await w.bot.store.jobs_for(w.guild, None)
                  if j.state is JobState.RESERVED]
        assert len(queued) == 1
        job = queued[0]
        stranger = w.fd.add_member(w.guild, name="stranger")
        attempt = await w.command("cancel", {"job": job.id[:8]}, user=stranger)
        await w.wait_reply(attempt, "Only the member who asked")
        attempt = await w.command("cancel", {"job": job.id[:8]})
        text = await w.wait_reply(attempt, "Cancelled")
        assert "had not been sent to the provider yet" in text
        assert "its 4 s were refunded" in text
        cancelled = await w.bot.store.job(job.id)
        assert cancelled is not None and cancelled.state is JobState.CANCELLED
        assert cancelled.charge.value == "refunded" and cancelled.task_id is None
        assert await w.bot.store.ledger_balance(job.id) == 0
        usage = await w.bot.store.usage(w.guild, w.member,
                                        await w.bot.store.get_quota(w.guild, 120))
        assert usage.guild_used == 16  # the four others only


async def test_cancelling_a_submitted_job_says_it_is_not_refunded(tmp_path: Path) -> None:
    async with FakeApixo(task_s=60) as fake, moderated(tmp_path, fake) as (w, _):
        await w.command("video", {"prompt": "slow fox", "duration": 8})
        await eventually(lambda: fake.submits_accepted == 1)
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        await eventually(lambda: True)
        for _ in range(100):
            current = await w.bot.store.job(job.id)
            if current is not None and current.state is JobState.SUBMITTED:
                break
            await asyncio.sleep(0.05)
        attempt = await w.command("cancel", {"job": job.id}, user=w.moderator)
        text = await w.wait_reply(attempt, "Cancelled")
        assert "stopped waiting" in text and "8 s were not refunded" in text
        listing = await w.command("jobs")
        text = await w.wait_reply(listing, "cancelled")
        assert "(not refunded)" in text and job.id[:8] in text


async def test_jobs_lists_state_time_duration_and_link(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, _):
        await w.command("video", {"prompt": "a heron fishing", "duration": 8})
        (video,) = await w.wait_videos(1)
        await w.settled(1)  # the video can land a moment before the job is recorded
        mine = await w.command("jobs")
        text = await w.wait_reply(mine, "delivered")
        assert "8 s" in text and "<t:" in text and "a heron fishing" in text
        assert f"/channels/{w.guild}/{w.channel}/{video.id}" in text
        everyone = await w.command("jobs", {"everyone": True}, user=w.moderator)
        text = await w.wait_reply(everyone, "delivered")
        assert f"<@{w.member}>" in text


# -- the audit channel -----------------------------------------------------------------------


async def test_an_audit_line_per_request_refusal_and_outcome(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, fake):
        audit = w.fd.add_text_channel(w.guild, "video-audit")
        await moderate(w, "settings", {"audit_channel": audit, "max_duration": 4},
                       needle="updated")
        await moderate(w, "blocklist", {"term": "bad"}, subcommand="add", needle="Added")
        await w.command("video", {"prompt": "a fox `in` the snow @everyone", "duration": 4})
        await w.wait_videos(1)
        await eventually(lambda: len(audit_lines(w, audit)) == 2)  # request and done
        attempt = await w.command("video", {"prompt": "a fox", "duration": 8})
        await refused(w, fake, attempt, "limited to 4 s")
        attempt = await w.command("video", {"prompt": "a bаd fox"})
        await refused(w, fake, attempt, "does not allow")
        await eventually(lambda: len(audit_lines(w, audit)) == 4)
        request, done, too_long, blocked = (m.content for m in audit_lines(w, audit))
        job = (await w.bot.store.jobs_for(w.guild, None))[0]
        assert request.startswith(f"🎬 request `{job.id[:8]}`")
        assert f"<@{w.member}>" in request and "`sora-2`" in request and "4 s" in request
        assert "est. $0.36" in request and "a fox ˋinˋ the snow @everyone" in request
        assert done.startswith(f"✅ done `{job.id[:8]}`") and "/channels/" in done
        assert too_long.startswith("⛔ refused") and "8 s" in too_long
        assert "rule: duration" in too_long and "limited to 4 s" in too_long
        assert "rule: blocklist" in blocked and "||`a bаd fox`||" in blocked
        for line in audit_lines(w, audit):
            assert line.allowed_mentions is not None
            assert line.allowed_mentions.get("parse") == []
            assert not line.allowed_mentions.get("users")


async def test_a_failed_job_gets_an_audit_line_with_the_refund(tmp_path: Path) -> None:
    async with FakeApixo() as fake, moderated(tmp_path, fake) as (w, _):
        fake.outcome = "SensitiveContent"
        audit = w.fd.add_text_channel(w.guild, "video-audit")
        await moderate(w, "settings", {"audit_channel": audit}, needle="updated")
        await w.command("video", {"prompt": "a fox"})
        await eventually(lambda: len(audit_lines(w, audit)) == 2, 30)
        failed = audit_lines(w, audit)[1].content
        assert failed.startswith("❌ failed") and "4 s refunded" in failed


# -- /forget-me -------------------------------------------------------------------------------


async def ask_to_forget(w: World) -> tuple[Message, str]:
    """/forget-me: its private confirmation message and the custom id of its Yes button."""
    ask = await w.command("forget-me")
    await w.wait_reply(ask, "cannot be undone")
    (prompt_msg,) = [m for m in w.fd.messages(w.channel, include_ephemeral=True)
                     if str(m.interaction_id) == str(ask)]
    ids = [c["custom_id"] for row in prompt_msg.components for c in row["components"]]
    return prompt_msg, next(i for i in ids if i.startswith("forget:yes:"))


async def test_forget_me_deletes_prompts_after_confirmation(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, _):
        await w.command("video", {"prompt": "my secret garden", "duration": 8})
        (video,) = await w.wait_videos(1)
        prompt_msg, yes = await ask_to_forget(w)
        stranger = w.fd.add_member(w.guild, name="stranger")
        await w.fd.send_interaction(w.fd.button(yes, prompt_msg.id, user_id=stranger))
        await asyncio.sleep(0.3)
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert job.prompt == "my secret garden"
        await w.fd.send_interaction(w.fd.button(yes, prompt_msg.id, user_id=w.member))
        await eventually(lambda: "Done" in (w.fd.message(prompt_msg.id).content or ""))
        assert "1 prompt(s)" in w.fd.message(prompt_msg.id).content
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert job.prompt == DELETED_PROMPT and job.prompt_deleted_at is not None
        assert job.seconds == 8 and job.user_id == w.member  # usage figures stay
        report = await w.bot.store.usage_report(w.guild, await w.bot.store.get_quota(w.guild,
                                                                                      120))
        assert report.total_seconds == 8
        listing = await w.command("jobs")
        text = await w.wait_reply(listing, "delivered")
        assert "my secret garden" not in text and DELETED_PROMPT in text
        # Nor does the task id keep it (the sandbox's ids encode the request).
        assert job.task_id is not None and job.task_id.startswith("sha256:")
        assert job.task_hint is None
        # The Retry button cannot resend a deleted prompt.
        await w.fd.send_interaction(w.fd.button(f"video:retry:{job.id}", video.id,
                                                user_id=w.member))
        await asyncio.sleep(0.5)
        assert len(await w.bot.store.jobs_for(w.guild, None)) == 1


async def test_forget_me_also_removes_the_prompt_a_sandbox_task_id_carries(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:  # the sandbox: its task ids encode the request
        await w.command("video", {"prompt": "my secret orchard"})
        await w.wait_videos(1)
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert job.task_id is not None
        body = job.task_id.removeprefix("sbx_")
        assert "my secret orchard" in base64.urlsafe_b64decode(
            body + "=" * (-len(body) % 4)).decode()
        prompt_msg, yes = await ask_to_forget(w)
        await w.fd.send_interaction(w.fd.button(yes, prompt_msg.id, user_id=w.member))
        await eventually(lambda: "Done" in (w.fd.message(prompt_msg.id).content or ""))
        (forgotten,) = await w.bot.store.jobs_for(w.guild, None)
        assert forgotten.prompt == DELETED_PROMPT
        assert forgotten.task_id == "sha256:" + hashlib.sha256(job.task_id.encode()).hexdigest()
        assert forgotten.task_hint is None
        assert forgotten.seconds == job.seconds and forgotten.state is JobState.DELIVERED


# -- moderator commands ---------------------------------------------------------------------


MODERATOR_COMMANDS: list[tuple[str, dict[str, Any], str | None]] = [
    ("settings", {}, None),
    ("settings", {"cooldown": 5}, None),
    ("blocklist", {"term": "fox"}, "add"),
    ("blocklist", {"term": "fox"}, "remove"),
    ("blocklist", {}, "list"),
    ("block", {"member": 0}, None),
    ("unblock", {"member": 0}, None),
    ("jobs", {"everyone": True}, None),
]


async def test_a_non_moderator_is_refused_each_moderator_command(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, _):
        victim = w.fd.add_member(w.guild, name="victim")
        await moderate(w, "blocklist", {"term": "fox"}, subcommand="add", needle="Added")
        for name, options, sub in MODERATOR_COMMANDS:
            values = {k: (victim if k == "member" else v) for k, v in options.items()}
            kw: dict[str, Any] = {"strict": False}  # as if an admin had opened the command up
            if sub:
                kw["subcommand"] = sub
            attempt = await w.command(name, values, **kw)
            text = await w.wait_reply(attempt, "Manage Server")
            assert "You need the Manage Server permission" in text, (name, sub)
        policy = await w.bot.store.get_policy(w.guild)
        assert policy.cooldown_s == 0
        assert [e.value for e in await w.bot.store.block_entries(w.guild)] == ["fox"]
        assert await w.bot.store.blocked_members(w.guild) == []
        # Moderator commands carry Manage Server as their default permission.
        registered = {c["name"]: c for c in w.fd.registered_commands()}
        for name in ("settings", "blocklist", "block", "unblock"):
            assert int(registered[name]["default_member_permissions"]) == 1 << 5, name
        for name in ("jobs", "cancel", "forget-me", "video"):
            assert registered[name].get("default_member_permissions") is None, name


async def test_settings_without_options_shows_one_embed(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, _):
        text = await moderate(w, "settings", needle="These are")
        assert "every channel" in text and "everyone" in text and "every model" in text
        assert "Cooldown" in text and "Audit channel" in text and "Blocklist" in text
        interaction = await w.command("settings", user=w.moderator)
        await w.wait_reply(interaction, "These are")
        (message,) = [m for m in w.fd.messages(w.channel, include_ephemeral=True,
                                               source="interaction")
                      if str(m.interaction_id) == str(interaction)]
        assert len(message.embeds) == 1 and message.ephemeral


async def test_a_broken_audit_channel_does_not_hold_up_requests(tmp_path: Path) -> None:
    async with moderated(tmp_path) as (w, _):
        audit = w.fd.add_text_channel(w.guild, "video-audit")
        w.fd.set_bot_channel_permissions(audit, deny=Perm.SEND_MESSAGES)
        text = await moderate(w, "settings", {"audit_channel": audit}, needle="updated")
        assert "I cannot send messages" in text
        await w.command("video", {"prompt": "a fox"})
        await w.wait_videos(1)
        await asyncio.wait_for(w.bot.audit.idle(), 10)
        assert audit_lines(w, audit) == []


def test_cancel_replies_say_whether_and_why_seconds_came_back() -> None:
    from bot.store import Charge, Job

    base: dict[str, Any] = {
        "id": "ab" * 16, "token_hash": "h", "guild_id": 1, "channel_id": 2, "user_id": 3,
        "provider": "apixo", "model": "sora-2", "mode": "text-to-video", "prompt": "p",
        "duration": 8, "orientation": "landscape", "image_path": None,
        "state": JobState.SUBMITTED, "charge": Charge.RESERVED, "seconds": 8,
        "price_per_second": 0.09, "task_id": "t", "task_hint": None, "video_url": None,
        "video_path": None, "error_code": None, "error_message": None, "context": {},
        "message_id": None, "created_at": 0.0, "updated_at": 0.0, "submitted_at": 0.0,
        "finished_at": None,
    }
    submitted = Job(**base)
    queued = Job(**(base | {"state": JobState.RESERVED, "task_id": None}))
    refunded = Job(**(base | {"state": JobState.CANCELLED, "charge": Charge.REFUNDED}))
    spent_job = Job(**(base | {"state": JobState.CANCELLED, "charge": Charge.COMMITTED}))
    delivered = Job(**(base | {"state": JobState.DELIVERED}))
    assert "had not been sent to the provider yet, so its 8 s were refunded" in cancel_text(
        queued, refunded, True)
    assert "provider confirms it will not make it, so its 8 s were refunded" in cancel_text(
        submitted, refunded, True)
    assert "stopped waiting" in cancel_text(submitted, spent_job, False)
    assert "8 s were not refunded" in cancel_text(submitted, spent_job, False)
    assert "already finished (delivered)" in cancel_text(submitted, delivered, False)
    # The job moved on between /cancel's read and its compare-and-set: nothing happened.
    sending = Job(**(base | {"state": JobState.SUBMITTING, "task_id": None}))
    text = cancel_text(queued, sending, False)
    assert "nothing was cancelled" in text and "already finished" not in text
