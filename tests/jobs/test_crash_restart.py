"""A bot process killed with SIGKILL at every point of a job's life, then restarted:
nothing lost, nothing posted twice, no second task, the ledger balances."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from bot.store import Store
from tests.fakes.apixo import FakeApixo
from tests.jobs.crash_harness import CRASH_POINTS
from tests.pgserver import database_target

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_harness(tmp_path: Path, fake: FakeApixo, *extra: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.jobs.crash_harness",
        "--db", str(database_target(tmp_path)), "--work", str(tmp_path / "work"),
        "--posts", str(tmp_path / "posts.jsonl"), "--base-url", fake.api_base,
        "--key", fake.api_key, *extra, cwd=ROOT,
    )
    return await asyncio.wait_for(proc.wait(), timeout=60)


def posts(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "posts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# Where the bot cannot know whether the provider got the request, it fails and refunds
# (never re-sends); everywhere else the video is delivered exactly once.
EXPECTED = {
    "reserved": "delivered",
    "submitting": "failed",
    "sent-unrecorded": "failed",
    "submitted": "delivered",
    "succeeded": "delivered",
    "posted-unrecorded": "delivered",
    "delivered": "delivered",
}


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
async def test_sigkill_then_restart(tmp_path: Path, point: str) -> None:
    async with FakeApixo(queue_s=0.1, task_s=0.4) as fake:
        code = await run_harness(tmp_path, fake, "--request", "--crash-at", point)
        assert code == -signal.SIGKILL
        assert await run_harness(tmp_path, fake) == 0
        # A third start finds nothing left to do and changes nothing.
        assert await run_harness(tmp_path, fake) == 0

        store = await Store.open(database_target(tmp_path))
        try:
            (job,) = await store.jobs_for(1, None, limit=5)
            assert job.state.value == EXPECTED[point], job.error_message
            assert fake.submits_accepted <= 1
            assert len(fake.requests_to("POST", "/api/v1/generateTask")) <= 1
            delivered = [p for p in posts(tmp_path) if p["job"] == job.id]
            if EXPECTED[point] == "delivered":
                assert len(delivered) == 1 and job.message_id == delivered[0]["message"]
                assert await store.ledger_balance(job.id) == job.seconds
                assert job.charge.value == "committed"
            else:
                assert delivered == []
                assert await store.ledger_balance(job.id) == 0
                assert job.charge.value == "refunded"
                assert job.error_code == "submit_uncertain"
            assert await store.unfinished_jobs() == []
        finally:
            await store.close()


@pytest.mark.parametrize("mode", ["early", "normal"])
async def test_a_callback_lets_a_restart_adopt_the_task(tmp_path: Path, mode: str) -> None:
    """Killed after the create reached the provider but before the task id was saved: a
    callback naming the task (early, or at completion after the restart) lets the bot
    adopt it instead of failing; it is never sent twice."""
    async with FakeApixo(queue_s=0.1, task_s=0.4 if mode == "early" else 2.0) as fake:
        fake.callback_mode = mode
        port = free_port()  # the same callback address across the restart
        code = await run_harness(
            tmp_path, fake, "--request", "--callbacks", "--port", str(port),
            "--crash-at", "sent-unrecorded",
        )
        assert code == -signal.SIGKILL
        assert await run_harness(tmp_path, fake, "--callbacks", "--port", str(port)) == 0
        store = await Store.open(database_target(tmp_path))
        try:
            (job,) = await store.jobs_for(1, None, limit=5)
            assert job.state.value == "delivered"
            assert fake.submits_accepted == 1
            assert len(posts(tmp_path)) == 1
        finally:
            await store.close()


async def test_a_restarted_process_takes_its_own_jobs_back_at_once(tmp_path: Path) -> None:
    """Killed with SIGKILL while its job renders, then started again: the same identity
    holds the job's lease, so the restarted process resumes it at once instead of waiting
    for the lease (30 s here, the default) to run out."""
    async with FakeApixo(queue_s=0.1, task_s=0.4) as fake:
        lease = "--lease", "30"
        code = await run_harness(tmp_path, fake, "--request", "--crash-at", "submitted", *lease)
        assert code == -signal.SIGKILL
        started = asyncio.get_running_loop().time()
        assert await run_harness(tmp_path, fake, *lease) == 0
        took = asyncio.get_running_loop().time() - started
        store = await Store.open(database_target(tmp_path))
        try:
            (job,) = await store.jobs_for(1, None, limit=5)
            assert job.state.value == "delivered"
        finally:
            await store.close()
        assert took < 15, f"the restart took {took:.1f} s: it waited for its own lease"
        assert len(posts(tmp_path)) == 1 and fake.submits_accepted == 1


async def test_a_second_live_process_with_the_same_identity_is_refused(tmp_path: Path) -> None:
    """Two live processes never share an identity: the second one refuses to start (and
    changes nothing), while a process with an identity of its own starts."""
    from bot.store import IdentityInUse

    first = await Store.open(database_target(tmp_path))
    second = await Store.open(database_target(tmp_path))
    try:
        await first.hold_identity("bot-1")
        with pytest.raises(IdentityInUse):
            await second.hold_identity("bot-1")
        if first.dialect == "postgres":  # one SQLite file serves one process at all
            await second.hold_identity("bot-2")
        await first.close()
        await second.hold_identity("bot-1")  # the first one is gone: free again
    finally:
        await first.close()
        await second.close()
