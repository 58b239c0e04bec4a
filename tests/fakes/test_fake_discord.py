"""The fake Discord, exercised by the real discord.py client (in-process, loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from tests.fakes.fake_discord import FakeDiscord, Perm, point_discord_py
from tests.fakes.fake_discord.pointing import running_client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def fd() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


def make_bot() -> commands.Bot:
    return commands.Bot(command_prefix="!", intents=discord.Intents.default(),
                        guild_ready_timeout=0.05)


@contextlib.asynccontextmanager
async def running(fd: FakeDiscord, bot: commands.Bot) -> AsyncIterator[commands.Bot]:
    """Start ``bot`` against the fake; yield once it is ready; always close it."""
    async with running_client(fd, bot, ready_within=10) as started:
        yield started


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, format="PNG")
    return buf.getvalue()


async def raw_post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status, await resp.json()


# -- login and gateway -----------------------------------------------------------------------
async def test_login_ready_and_guild_cache(fd: FakeDiscord) -> None:
    gid = fd.add_guild("Videos")
    cid = fd.text_channels(gid)[0]
    async with running(fd, make_bot()) as bot:
        assert bot.user is not None and bot.user.id == fd.bot_user_id
        assert bot.application_id == fd.application_id
        guild = bot.get_guild(gid)
        assert guild is not None and guild.name == "Videos"
        channel = guild.get_channel(cid)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        assert guild.me.id == fd.bot_user_id
        assert channel.permissions_for(guild.me).attach_files
        expected = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
        assert fd.gateway.connects[0]["compress"] == expected
        assert fd.gateway.identifies == 1
        assert [r.status for r in fd.requests_to("GET", "/users/@me")] == [200]
        assert fd.requests_to("GET", "/oauth2/applications/@me")


async def test_wrong_token_is_a_login_failure(fd: FakeDiscord) -> None:
    bot = make_bot()
    with point_discord_py(fd):
        with pytest.raises(discord.LoginFailure):
            async with asyncio.timeout(10):
                await bot.login("not-the-token")
        await bot.close()
    assert fd.requests[-1].status == 401


async def test_gateway_protocol_zlib_resume_and_close_codes(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{fd.gateway_url}?v=10&encoding=json&compress=zlib-stream")
        inflate = zlib.decompressobj()

        async def recv() -> dict[str, Any]:
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.BINARY
            assert msg.data.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH per message
            return json.loads(inflate.decompress(msg.data))

        assert (await recv())["op"] == 10
        await ws.send_json({"op": 1, "d": None})
        assert (await recv())["op"] == 11
        await ws.send_json({"op": 2, "d": {"token": fd.token, "intents": 513, "properties": {}}})
        ready = await recv()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["guilds"] == [{"id": str(gid), "unavailable": True}]
        created = await recv()
        assert (created["t"], created["d"]["id"]) == ("GUILD_CREATE", str(gid))
        session = ready["d"]["session_id"]
        await ws.close(code=4000)  # not 1000/1001: those end the session

        await fd.wait_for(lambda: not fd.gateway.live_sessions())
        cid = fd.add_text_channel(gid, "later")  # dispatched while disconnected: buffered
        ws2 = await http.ws_connect(f"{fd.gateway_url}?v=10&encoding=json")
        assert (await ws2.receive_json(timeout=5))["op"] == 10
        await ws2.send_json({"op": 6, "d": {"token": fd.token, "session_id": session, "seq": 2}})
        replay = await ws2.receive_json(timeout=5)
        assert (replay["t"], replay["s"], replay["d"]["id"]) == ("CHANNEL_CREATE", 3, str(cid))
        assert (await ws2.receive_json(timeout=5))["t"] == "RESUMED"
        await ws2.close()

        ws3 = await http.ws_connect(f"{fd.gateway_url}?v=10&encoding=json")
        await ws3.receive_json(timeout=5)
        await ws3.send_json({"op": 6, "d": {"token": fd.token, "session_id": "nope", "seq": 1}})
        assert await ws3.receive_json(timeout=5) == {"op": 9, "d": False, "s": None, "t": None}
        await ws3.close()

        for identify, code in (({"token": "bad", "intents": 1}, 4004),
                               ({"token": fd.token, "intents": 1 << 8}, 4014),
                               ({"token": fd.token}, 4013)):
            ws4 = await http.ws_connect(f"{fd.gateway_url}?v=10&encoding=json")
            await ws4.receive_json(timeout=5)
            await ws4.send_json({"op": 2, "d": identify})
            msg = await ws4.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == code
            await ws4.close()


async def test_restart_reidentifies_and_reconnect_request_resumes(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    async with running(fd, make_bot()):
        pass
    # discord.py's close() races its own reader and sends 4000, so the old session stays
    # resumable (as on Discord); the new bot still identifies afresh
    await fd.wait_for(lambda: not fd.gateway.live_sessions())
    bot = make_bot()
    pinged = asyncio.Event()

    @bot.tree.command(name="ping", description="Ping", guild=discord.Object(gid))
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")
        pinged.set()

    async with running(fd, bot):
        assert fd.gateway.identifies == 2
        await bot.tree.sync(guild=discord.Object(gid))
        resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=10))
        await fd.request_reconnect()
        await resumed
        assert fd.gateway.resumes == 1 and bot.get_guild(gid) is not None

        fd.invalidate_sessions()  # op 9: the bot identifies afresh (discord.py waits 5 s first)
        await fd.wait_for(lambda: fd.gateway.identifies == 3 and fd.gateway.live_sessions(),
                          timeout=15)
        await fd.send_interaction(fd.slash("ping", guild_id=gid))
        async with asyncio.timeout(5):
            await pinged.wait()


# -- app commands and interactions -----------------------------------------------------------
async def test_slash_command_synced_deferred_followed_up_and_edited(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    uid = fd.add_member(gid, name="alice")
    bot = make_bot()

    @bot.tree.command(name="video", description="Make a video", guild=discord.Object(gid))
    async def video(interaction: discord.Interaction, prompt: str, duration: int = 4) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(f"queued {prompt} {duration}s")
        await interaction.edit_original_response(content=f"done {prompt}")

    async with running(fd, bot):
        synced = await bot.tree.sync(guild=discord.Object(gid))
        await bot.tree.sync()
        assert [c.name for c in synced] == ["video"]
        assert len(fd.guild_syncs(gid)) == 1 and len(fd.global_syncs) == 1
        assert int(fd.registered_commands(gid)[0]["id"]) == synced[0].id

        payload = fd.slash("video", {"prompt": "a cat", "duration": 8}, guild_id=gid,
                           channel_id=cid, user_id=uid)
        assert payload["data"]["options"][1] == {"name": "duration", "type": 4, "value": 8}
        assert payload["data"]["guild_id"] == str(gid)
        await fd.send_interaction(payload)
        msg = await fd.wait_for(lambda: next(
            (m for m in fd.messages(cid) if m.content == "done a cat"), None))

        latency = fd.ack_latency(payload["id"])
        assert latency is not None and latency < 3.0
        assert [(r.type, r.status) for r in fd.interaction_responses(payload["id"])] == [(5, 200)]
        assert msg.source == "interaction" and not msg.loading and msg.edits == 2
        assert len(fd.messages(cid)) == 1  # the follow-up filled the "thinking" message

        status, body = await raw_post(
            f"{fd.api_base}/interactions/{payload['id']}/{payload['token']}/callback",
            {"type": 5})
        assert (status, body["code"]) == (400, 40060)


async def test_subcommand_with_integer_and_ephemeral_reply(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    bot = make_bot()
    quota = app_commands.Group(name="quota", description="Quotas", guild_ids=[gid],
                               default_permissions=discord.Permissions(manage_guild=True))
    replied = asyncio.Event()

    @quota.command(name="set", description="Set the quota")
    async def set_quota(interaction: discord.Interaction,
                        seconds: app_commands.Range[int, 1, 3600]) -> None:
        await interaction.response.send_message(f"quota {seconds}", ephemeral=True)
        replied.set()

    bot.tree.add_command(quota)
    async with running(fd, bot):
        await bot.tree.sync(guild=discord.Object(gid))
        member = fd.add_member(gid, name="dave")
        with pytest.raises(PermissionError):  # Discord hides the command from dave
            fd.slash("quota", {"seconds": 300}, subcommand="set", user_id=member)
        with pytest.raises(ValueError, match="outside"):  # the client enforces Range
            fd.slash("quota", {"seconds": 5000}, subcommand="set", guild_id=gid)
        payload = fd.slash("quota", {"seconds": 300}, subcommand="set", guild_id=gid)
        assert payload["data"]["options"][0]["type"] == 1
        await fd.send_interaction(payload)
        async with asyncio.timeout(5):
            await replied.wait()
        assert fd.messages(cid) == []
        (msg,) = fd.messages(cid, include_ephemeral=True)
        assert msg.content == "quota 300" and msg.ephemeral


async def test_late_ack_is_unknown_interaction(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    fd.interaction_ack_deadline_s = 0.3
    bot = make_bot()
    codes: list[int] = []

    @bot.tree.command(name="slow", description="Too slow", guild=discord.Object(gid))
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.5)
        try:
            await interaction.response.defer()
        except discord.NotFound as exc:
            codes.append(exc.code)

    async with running(fd, bot):
        await bot.tree.sync(guild=discord.Object(gid))
        payload = fd.slash("slow", guild_id=gid)
        await fd.send_interaction(payload)
        await fd.wait_for(lambda: codes)
        assert codes == [10062]
        latency = fd.ack_latency(payload["id"])
        assert latency is not None and latency > 0.3
        assert fd.interaction_responses(payload["id"])[0].status == 404


async def test_expired_interaction_token(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    fd.interaction_token_ttl_s = 0.3
    bot = make_bot()
    errors: list[tuple[int, int]] = []

    @bot.tree.command(name="long", description="Long job", guild=discord.Object(gid))
    async def long_job(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await asyncio.sleep(0.5)
        try:
            await interaction.followup.send("too late")
        except discord.HTTPException as exc:
            errors.append((exc.status, exc.code))

    async with running(fd, bot):
        await bot.tree.sync(guild=discord.Object(gid))
        await fd.send_interaction(fd.slash("long", guild_id=gid))
        await fd.wait_for(lambda: errors)
        assert errors == [(401, 50027)]


async def test_attachment_option_read_from_fake_cdn(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    bot = make_bot()
    image = png_bytes(320, 400)
    url = fd.host_file(image, "cat.png", "image/png")
    seen: dict[str, Any] = {}

    @bot.tree.command(name="animate", description="Animate", guild=discord.Object(gid))
    async def animate(interaction: discord.Interaction, image: discord.Attachment,
                      prompt: str) -> None:
        await interaction.response.defer()
        seen["limit"] = interaction.filesize_limit
        seen["meta"] = (image.filename, image.content_type, image.width, image.height,
                        image.size)
        seen["data"] = await image.read()
        await interaction.followup.send(f"animating {prompt}")
        seen["done"] = True

    async with running(fd, bot):
        await bot.tree.sync(guild=discord.Object(gid))
        payload = fd.slash("animate", {"prompt": "wave"}, attachments={"image": url},
                           guild_id=gid, attachment_size_limit=25 * 1024 * 1024)
        await fd.send_interaction(payload)
        await fd.wait_for(lambda: "done" in seen)
        assert seen["data"] == image
        assert seen["meta"] == ("cat.png", "image/png", 320, 400, len(image))
        assert seen["limit"] == 25 * 1024 * 1024
        assert [d.status for d in fd.downloads] == [200]

    fd.expire_attachment(url)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 404


async def test_button_interaction_on_posted_message(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    uid = fd.add_member(gid, name="bob")
    clicked = asyncio.Event()

    class Retry(discord.ui.View):
        @discord.ui.button(label="Retry", custom_id="retry")
        async def retry(self, interaction: discord.Interaction,
                        button: discord.ui.Button[Retry]) -> None:
            await interaction.response.edit_message(content="retrying", view=None)
            clicked.set()

    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("failed", view=Retry(timeout=30))
        assert fd.message(sent.id).components[0]["components"][0]["custom_id"] == "retry"
        payload = fd.button("retry", sent.id, user_id=uid)
        await fd.send_interaction(payload)
        async with asyncio.timeout(5):
            await clicked.wait()
        assert fd.message(sent.id).content == "retrying"
        assert fd.message(sent.id).components == []
        assert [r.type for r in fd.interaction_responses(payload["id"])] == [7]


# -- channel messages ------------------------------------------------------------------------
async def test_channel_send_file_is_stored_with_bytes_and_dispatched(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    data = os.urandom(50_000)
    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        echoed = asyncio.ensure_future(
            bot.wait_for("message", check=lambda m: m.channel.id == cid, timeout=5))
        sent = await channel.send("here", file=discord.File(io.BytesIO(data), "clip.mp4"))
        (stored,) = fd.messages(cid)
        (att,) = stored.attachments
        assert (stored.id, stored.content, stored.author_id) == (sent.id, "here", fd.bot_user_id)
        assert (att.filename, att.content_type, att.size, att.data) == (
            "clip.mp4", "video/mp4", len(data), data)
        assert sent.attachments[0].size == len(data)
        assert (await echoed).id == sent.id  # MESSAGE_CREATE reached the bot


@pytest.mark.parametrize(("status", "min_wait"), [(429, 0.2), (500, 1.0)])
async def test_failed_post_is_retried_and_stored_once(fd: FakeDiscord, status: int,
                                                      min_wait: float) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        fd.fail_next_message_posts(1, status=status, retry_after=0.2)
        started = time.monotonic()
        await channel.send("once")
        assert time.monotonic() - started >= min_wait * 0.9  # asyncio may wake a bit early
        assert [m.content for m in fd.messages(cid)] == ["once"]
        posts = fd.requests_to("POST", f"/channels/{cid}/messages")
        assert [r.status for r in posts] == [status, 200]


async def test_missing_permissions(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        updated = asyncio.ensure_future(bot.wait_for("guild_channel_update", timeout=5))
        fd.set_bot_channel_permissions(cid, deny=Perm.SEND_MESSAGES)
        await updated
        assert not channel.permissions_for(channel.guild.me).send_messages
        assert not int(fd.slash("x", guild_id=gid)["app_permissions"]) & Perm.SEND_MESSAGES
        with pytest.raises(discord.Forbidden) as exc:
            await channel.send("nope")
        assert exc.value.code == 50013

        fd.set_bot_channel_permissions(cid, deny=["attach_files", "embed_links"])
        with pytest.raises(discord.Forbidden) as exc:
            await channel.send(file=discord.File(io.BytesIO(b"abc"), "a.txt"))
        assert exc.value.code == 50013
        await channel.send("text", embed=discord.Embed(title="dropped"))
        (stored,) = fd.messages(cid)
        assert stored.embeds == [] and stored.embeds_dropped


async def test_upload_limit_is_413_40005(fd: FakeDiscord) -> None:
    gid = fd.add_guild(upload_limit=1000)
    cid = fd.text_channels(gid)[0]
    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as exc:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 2000), "big.bin"))
        assert (exc.value.status, exc.value.code) == (413, 40005)
        assert fd.messages(cid) == []


async def test_edit_rate_limit(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    fd.rate_limit_edits(2, window_s=0.5)
    async with running(fd, make_bot()) as bot:
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("v0")
        started = time.monotonic()
        for i in range(1, 5):
            msg = await msg.edit(content=f"v{i}")
        assert time.monotonic() - started >= 0.4  # discord.py obeyed the bucket headers
        assert fd.message(msg.id).content == "v4" and fd.message(msg.id).edits == 4

        fd.rate_limit_edits(2, window_s=30.0)  # a fresh, long window: the third edit is a 429
        url = f"{fd.api_base}/channels/{cid}/messages/{msg.id}"
        headers = {"Authorization": f"Bot {fd.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            statuses = []
            for _ in range(3):
                async with http.patch(url, json={"content": "raw"}) as resp:
                    statuses.append(resp.status)
                    body = await resp.json()
                    via = resp.headers.get("Via")
        assert statuses == [200, 200, 429] and via
        assert set(body) == {"message", "retry_after", "global"} and body["retry_after"] > 25


async def test_rest_reads_history_edit_and_delete_events(fd: FakeDiscord) -> None:
    gid = fd.add_guild("Reads")
    cid = fd.text_channels(gid)[0]
    uid = fd.add_member(gid, name="carol", permissions=Perm.MANAGE_GUILD)
    async with running(fd, make_bot()) as bot:
        guild = await bot.fetch_guild(gid)
        assert guild.name == "Reads"
        fetched = await bot.fetch_channel(cid)
        assert isinstance(fetched, discord.TextChannel) and fetched.name == "general"
        assert [c.id for c in await guild.fetch_channels()] == [cid]
        assert {r.name for r in await guild.fetch_roles()} >= {"@everyone", "carol-perms"}
        member = await guild.fetch_member(uid)
        assert member.guild_permissions.manage_guild

        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        sent = [await channel.send(f"m{i}") for i in range(5)]
        history = [m.content async for m in channel.history(limit=3)]
        assert history == ["m4", "m3", "m2"]
        older = [m.content async for m in channel.history(limit=10, before=sent[2])]
        assert older == ["m1", "m0"]
        newer = [m.content async for m in channel.history(limit=10, after=sent[2])]
        assert newer == ["m3", "m4"]
        assert (await channel.fetch_message(sent[0].id)).content == "m0"

        edited = asyncio.ensure_future(bot.wait_for("raw_message_edit", timeout=5))
        await sent[0].edit(content="m0 edited")
        assert (await edited).message_id == sent[0].id
        deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
        await sent[1].delete()
        assert (await deleted).message_id == sent[1].id
        assert [m.content for m in fd.messages(cid)] == ["m0 edited", "m2", "m3", "m4"]
        with pytest.raises(discord.NotFound):
            await channel.fetch_message(sent[1].id)


async def test_original_response_followups_and_latency(fd: FakeDiscord) -> None:
    gid = fd.add_guild()
    cid = fd.text_channels(gid)[0]
    bot = make_bot()
    finished = asyncio.Event()
    seen: dict[str, Any] = {}

    @bot.tree.command(name="status", description="Status", guild=discord.Object(gid))
    async def status(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("working")
        seen["original"] = (await interaction.original_response()).content
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content="extra edited")
        hidden = await interaction.followup.send("secret", ephemeral=True, wait=True)
        seen["hidden_flags"] = hidden.flags.ephemeral
        await interaction.delete_original_response()
        finished.set()

    async with running(fd, bot):
        await bot.tree.sync(guild=discord.Object(gid))
        fd.latency_s = 0.05
        payload = fd.slash("status", guild_id=gid)
        await fd.send_interaction(payload)
        async with asyncio.timeout(5):
            await finished.wait()
        assert seen == {"original": "working", "hidden_flags": True}
        assert [(m.content, m.source) for m in fd.messages(cid)] == [
            ("extra edited", "followup")]
        assert fd.message(fd.interaction(payload["id"]).original_message_id).deleted
        latency = fd.ack_latency(payload["id"])
        assert latency is not None and 0.045 <= latency < 3.0
