"""Sharded processes: each runs the shards in SHARD_IDS out of SHARD_COUNT, Discord routes
a server's events to shard ``(guild_id >> 22) % count``, and one process syncs globally."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings
from tests.bot.support import running_bot, settings_for
from tests.cli.test_cli import base_env, run
from tests.fakes.fake_discord import FakeDiscord


def guild_id_on_shard(shard: int, count: int, serial: int) -> int:
    """A snowflake-shaped guild id that Discord would route to ``shard``."""
    timestamp = 10_000_000_000 + serial * count + shard
    guild = (timestamp - timestamp % count + shard) << 22
    assert (guild >> 22) % count == shard
    return guild


async def test_each_process_serves_only_the_servers_of_its_shards(tmp_path: Path) -> None:
    async with FakeDiscord() as fd:
        guilds = [fd.add_guild(f"g{s}", guild_id=guild_id_on_shard(s, 2, 1)) for s in (0, 1)]
        members = [fd.add_member(g, name="member") for g in guilds]
        channels = [fd.text_channels(g)[0] for g in guilds]
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for shard in (0, 1):
                config = settings_for(tmp_path / f"p{shard}", fd, shard_count=2,
                                      shard_ids=[shard])
                bots.append(await stack.enter_async_context(running_bot(config, fd)))
            for shard, bot in enumerate(bots):
                assert sorted(bot.shards) == [shard]
                assert bot.shard_count == 2
                assert [g.id for g in bot.guilds] == [guilds[shard]]
            # a command in each server reaches the process of that server's shard only
            for shard in (0, 1):
                payload = fd.slash("video", {"prompt": f"fox {shard}"}, guild_id=guilds[shard],
                                   channel_id=channels[shard], user_id=members[shard])
                await fd.send_interaction(payload)
                await fd.wait_for(lambda p=payload: fd.ack_latency(int(p["id"])) is not None, 10)
            for shard, bot in enumerate(bots):
                await fd.wait_for(lambda s=shard: len(fd.messages(
                    channels[s], source="channel")) > 0, 20)  # the video is posted
                mine = await bot.store.jobs_for(guilds[shard], None, limit=10)
                other = await bot.store.jobs_for(guilds[1 - shard], None, limit=10)
                assert [j.prompt for j in mine] == [f"fox {shard}"] and other == []
            health = await bots[1]._health()
            assert health["shards"] == [1] and health["shard_count"] == 2
        # only the process that runs shard 0 syncs the global commands
        assert len(fd.global_syncs) == 1


async def test_unset_shards_run_discords_recommended_count(tmp_path: Path) -> None:
    async with FakeDiscord() as fd:
        fd.recommended_shards = 2
        guilds = [fd.add_guild(f"g{s}", guild_id=guild_id_on_shard(s, 2, 7)) for s in (0, 1)]
        async with running_bot(settings_for(tmp_path, fd), fd) as bot:
            assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
            assert sorted(g.id for g in bot.guilds) == sorted(guilds)


@pytest.mark.parametrize(("values", "line"), [
    ({"SHARD_IDS": "0,1"}, "SHARD_IDS: needs SHARD_COUNT, the total number of shards"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"},
     "SHARD_IDS: shard 2 does not exist with SHARD_COUNT=2 (ids run from 0 to 1)"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS: names a shard more than once"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "one"},
     "SHARD_IDS: write the shard ids as whole numbers separated by commas, e.g. 0,1"),
    ({"SHARD_COUNT": "zero"}, "SHARD_COUNT: must be a whole number"),
    ({"SHARD_COUNT": "0"}, "SHARD_COUNT: must be greater than or equal to 1"),
    ({"JOB_LEASE_S": "-1"}, "JOB_LEASE_S: must be greater than 0"),
])
async def test_bad_shard_settings_stop_start_up_with_one_line(
    tmp_path: Path, values: dict[str, str], line: str
) -> None:
    env = base_env(tmp_path, DISCORD_TOKEN="x.y.z", **values)
    code, out, err = await run(env, tmp_path)
    assert code == 2, err
    assert err.strip() == f"error: {line}"
    assert "Traceback" not in err and "x.y.z" not in out + err


def test_shard_ids_parse_and_shard_zero_owns_the_global_sync() -> None:
    settings = load_settings(_env_file=None, shard_count=3, shard_ids=" 2, 0 ")
    assert settings.shard_ids == [2, 0] and settings.runs_shard_zero
    assert not load_settings(_env_file=None, shard_count=3, shard_ids="1").runs_shard_zero
    assert load_settings(_env_file=None).runs_shard_zero
    with pytest.raises(SettingsError):
        load_settings(_env_file=None, shard_ids="1")
