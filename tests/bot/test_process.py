"""The bot started as ``python -m bot``, as an operator runs it, against the fake Discord
and the provider emulators: every provider end to end, a burst of 200 commands, refusals
that keep the bot working, a restart in the middle of a job and the command-sync rules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bot.support import decodes_as_mp4, png
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import FakeProvider
from tests.fakes.fake_discord import FakeDiscord, Perm
from tests.fakes.fake_discord.models import Message
from tests.fakes.pixazo import FakePixazo
from tests.pgserver import database_env

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(tmp_path: Path, fd: FakeDiscord, provider: FakeProvider | None = None,
            **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL", "_URL")) and k not in (
               "PROVIDER", "MODEL", "DEV_GUILD_ID", "POLL_FIRST_S", "POLL_INTERVAL_S")}
    env.update(
        DISCORD_TOKEN=fd.token, DISCORD_API_BASE_URL=fd.api_base,
        DISCORD_GATEWAY_URL=fd.gateway_url, **database_env(tmp_path / "data"),
        WEBHOOK_HOST="127.0.0.1", WEBHOOK_PORT=str(free_port()), POLL_FIRST_S="0.1",
        POLL_INTERVAL_S="0.2", SANDBOX_DELAY_S="0.5", LOG_LEVEL="INFO", JOB_LEASE_S="1",
    )
    if provider is not None:
        name = type(provider).__name__.removeprefix("Fake").lower()
        base = provider.api_base if isinstance(provider, FakeApixo) else provider.base_url
        env.update({"PROVIDER": name, f"{name.upper()}_API_KEY": provider.api_key,
                    f"{name.upper()}_BASE_URL": base})
    env.update(extra)
    return env


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def bot_process(fd: FakeDiscord, env: dict[str, str], log: Path) -> AsyncIterator[Running]:
    connects = fd.gateway.connects
    with log.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=sink, stderr=sink)
    running = Running(proc, log)
    try:
        await fd.wait_for(lambda: (fd.gateway.connects > connects and any(
            s.get("ready") if isinstance(s, dict) else getattr(s, "ready", False)
            for s in getattr(fd.gateway, "sessions", {}).values()
        )) or "logged in as" in running.text(), 30)
        await fd.wait_for(lambda: "logged in as" in running.text(), 30)
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@dataclass
class Guild:
    id: int
    channel: int
    member: int
    moderator: int


def make_guild(fd: FakeDiscord) -> Guild:
    gid = fd.add_guild("Videos")
    return Guild(gid, fd.text_channels(gid)[0], fd.add_member(gid, name="member"),
                 fd.add_member(gid, name="mod", permissions=Perm.MANAGE_GUILD))


def videos(fd: FakeDiscord, channel: int) -> list[Message]:
    return [m for m in fd.messages(channel, source="channel") if m.attachments]


def told(fd: FakeDiscord, channel: int, interaction_id: int) -> str:
    return "\n".join(
        (m.content or "") + " " + " ".join(str(e) for e in m.embeds)
        for m in fd.messages(channel, include_ephemeral=True, source="interaction")
        if str(m.interaction_id) == str(interaction_id)
    )


async def send(fd: FakeDiscord, g: Guild, name: str, options: dict[str, object] | None = None,
               **kw: object) -> int:
    kw.setdefault("user_id", g.member)
    payload = fd.slash(name, options or {}, guild_id=g.id, channel_id=g.channel, **kw)
    await fd.send_interaction(payload)
    return int(payload["id"])


@pytest.mark.parametrize("fake_cls", [None, FakeApixo, FakeAivideoapi, FakePixazo],
                         ids=["sandbox", "apixo", "aivideoapi", "pixazo"])
async def test_video_and_animate_on_each_provider(tmp_path: Path, fake_cls: type | None) -> None:
    async with contextlib.AsyncExitStack() as stack:
        fd = await stack.enter_async_context(FakeDiscord())
        fake = await stack.enter_async_context(fake_cls()) if fake_cls else None
        g = make_guild(fd)
        env = bot_env(tmp_path, fd, fake)
        if fake_cls is FakeApixo or fake_cls is FakeAivideoapi:  # they fetch images by URL
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['WEBHOOK_PORT']}"
        await stack.enter_async_context(bot_process(fd, env, tmp_path / "bot.log"))
        # APIXO's default (MODEL unset) is veo-3-1-fast, which makes 8-second videos.
        seconds = 8 if fake_cls is FakeApixo else 4
        await send(fd, g, "video", {"prompt": "a red fox in snow", "duration": seconds})
        url = fd.host_file(png(1024, 768), "photo.png", "image/png")
        await send(fd, g, "animate", {"prompt": "the sea moves"}, attachments={"image": url})
        await fd.wait_for(lambda: len(videos(fd, g.channel)) >= 2, 60)
        for message in videos(fd, g.channel):
            assert decodes_as_mp4(message.attachments[0].data) == pytest.approx(seconds, abs=0.5)
        if fake is not None:
            assert fake.submits_accepted == 2
            assert any(t.image_info is not None for t in fake.tasks.values())
        await asyncio.sleep(0.5)
        assert len(videos(fd, g.channel)) == 2


async def test_200_commands_at_once_are_all_acknowledged_quickly(tmp_path: Path) -> None:
    async with FakeDiscord() as fd:
        g = make_guild(fd)
        env = bot_env(tmp_path, fd, SANDBOX_DELAY_S="1", DEFAULT_QUOTA_SECONDS="100000")
        async with bot_process(fd, env, tmp_path / "bot.log"):
            payloads = [fd.slash("video", {"prompt": f"fox number {i}", "duration": 4},
                                 guild_id=g.id, channel_id=g.channel, user_id=g.member)
                        for i in range(200)]
            await asyncio.gather(*(fd.send_interaction(p) for p in payloads))
            ids = [int(p["id"]) for p in payloads]
            await fd.wait_for(lambda: all(fd.ack_latency(i) is not None for i in ids), 20)
            latencies = sorted(fd.ack_latency(i) or 99.0 for i in ids)
            assert latencies[-1] < 3.0, f"slowest acknowledgement {latencies[-1]:.2f} s"


async def test_refusals_cost_nothing_and_the_bot_keeps_working(tmp_path: Path) -> None:
    async with FakeAivideoapi() as fake, FakeDiscord() as fd:
        g = make_guild(fd)
        env = bot_env(tmp_path, fd, fake, DEFAULT_QUOTA_SECONDS="4")
        async with bot_process(fd, env, tmp_path / "bot.log") as bot:
            cases = [
                ("video", {"prompt": "x" * 5001}, {}, "5,000"),
                ("animate", {"prompt": "move"},
                 {"attachments": {"image": (b"plain text", "cat.png", "image/png")}},
                 "not a JPEG, PNG or WebP"),
                ("animate", {"prompt": "move"},
                 {"attachments": {"image": (png(100, 100), "tiny.png", "image/png")}}, "small"),
                ("animate", {"prompt": "move"},
                 {"attachments": {"image": (b"\0" * (21 * 1024 * 1024), "big.png",
                                            "image/png")}}, "20 MB"),
                ("quota", {"seconds": 999}, {"subcommand": "set"}, "Manage Server"),
            ]
            for name, options, extra, needle in cases:
                interaction = await send(fd, g, name, options, **extra)
                await fd.wait_for(lambda i=interaction, n=needle: n in told(fd, g.channel, i), 15)
            assert fake.requests == []
            # Still working: one video uses the whole 4 s budget, the next is refused.
            await send(fd, g, "video", {"prompt": "a fox", "duration": 4})
            await fd.wait_for(lambda: len(videos(fd, g.channel)) == 1, 30)
            refused = await send(fd, g, "video", {"prompt": "another fox", "duration": 4})
            await fd.wait_for(lambda: "left" in told(fd, g.channel, refused), 15)
            assert fake.submits_accepted == 1
            assert "Traceback" not in bot.text()


async def test_restart_mid_job_delivers_exactly_once(tmp_path: Path) -> None:
    async with FakeApixo(task_s=3.0) as fake, FakeDiscord() as fd:
        g = make_guild(fd)
        env = bot_env(tmp_path, fd, fake)
        async with bot_process(fd, env, tmp_path / "bot.log") as first:
            await send(fd, g, "video", {"prompt": "a slow fox"})
            # Once the bot polls, it has recorded the task id; then kill it (SIGKILL)
            # while the provider is still rendering.
            await fd.wait_for(lambda: fake.requests_to("GET", "/api/v1/statusTask"), 20)
            first.proc.kill()
            await first.proc.wait()
        async with bot_process(fd, env, tmp_path / "bot2.log"):
            await fd.wait_for(lambda: len(videos(fd, g.channel)) == 1, 60)
            await asyncio.sleep(1.0)
        assert len(videos(fd, g.channel)) == 1
        assert fake.submits_accepted == 1


async def test_commands_sync_to_the_dev_guild_every_start_and_globally_only_on_change(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fd:
        g = make_guild(fd)
        env = bot_env(tmp_path, fd)
        for run in range(2):
            async with bot_process(fd, env, tmp_path / f"global{run}.log"):
                await fd.wait_for(lambda: len(fd.global_syncs) >= 1, 20)
        assert len(fd.global_syncs) == 1, "an unchanged command set is not re-synced"
        names = {c["name"] for c in fd.registered_commands()}
        assert {"video", "animate", "quota", "usage"} <= names
        dev = dict(env, DEV_GUILD_ID=str(g.id))
        for run in range(2):
            async with bot_process(fd, dev, tmp_path / f"dev{run}.log"):
                await fd.wait_for(lambda r=run: len(fd.guild_syncs(g.id)) >= r + 1, 20)
        assert len(fd.guild_syncs(g.id)) == 2
        assert len(fd.global_syncs) == 1


async def test_webhook_port_in_use_is_one_line(tmp_path: Path) -> None:
    async with FakeDiscord() as fd:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            env = bot_env(tmp_path, fd, WEBHOOK_PORT=str(taken.getsockname()[1]))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2
        assert "error: WEBHOOK_PORT: cannot listen on 127.0.0.1" in err.decode()
        assert "Traceback" not in err.decode()


async def test_a_second_process_with_the_same_identity_refuses_to_start(tmp_path: Path) -> None:
    """The same INSTANCE_ID on the same database twice (on SQLite: two processes on one
    file) is refused with one clear line; the first process keeps running its job."""
    async with FakeDiscord() as fd:
        g = make_guild(fd)
        env = bot_env(tmp_path, fd, INSTANCE_ID="bot-a")
        async with bot_process(fd, env, tmp_path / "first.log"):
            second = dict(env, WEBHOOK_PORT=str(free_port()))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=ROOT, env=second,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            text = err.decode()
            assert proc.returncode == 2, text
            assert "Traceback" not in text
            assert ("INSTANCE_ID: another running bot process already uses the identity "
                    "'bot-a'" in text) or "another bot process is already running on" in text
            await send(fd, g, "video", {"prompt": "a fox"})
            await fd.wait_for(lambda: len(videos(fd, g.channel)) == 1, 60)
