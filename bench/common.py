"""What every benchmark shares: the figure table, percentiles, /proc memory readings, and
starting the real bot (``python -m bot``) or the floor bot as subprocesses pointed at a
fake Discord on 127.0.0.1.

Only loopback traffic: the fake Discord and the provider emulators listen on 127.0.0.1 and
the bots are told to use them. Every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


# -- figures and tables ---------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure, its target (text) and whether the target holds (None: info)."""

    name: str
    value: str
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


@dataclass
class Report:
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str, target: str = "", passed: bool | None = None) -> None:
        self.figures.append(Figure(name, value, target, passed))

    @property
    def ok(self) -> bool:
        return all(f.passed is not False for f in self.figures)

    def table(self) -> str:
        rows = [("figure", "measured", "target", "")] + [
            (f.name, f.value, f.target, f.verdict) for f in self.figures
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"## {self.title}", ""]
        for index, row in enumerate(rows):
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
            if index == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines.extend(f"\n{note}" for note in self.notes)
        return "\n".join(lines)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def machine_note() -> str:
    cpus = os.cpu_count() or 0
    try:
        total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
        memory = f"{total} GiB"
    except (OSError, ValueError, IndexError):
        memory = "? GiB"
    return f"machine: {cpus} cores, {memory}, Python {sys.version.split()[0]}, Linux"


# -- process memory -------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM... of a process in bytes (from /proc/<pid>/status)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            values[key] = int(parts[0]) * 1024
    return values


def rss(pid: int) -> int:
    return proc_status(pid)["VmRSS"]


def hwm(pid: int) -> int:
    return proc_status(pid)["VmHWM"]


def reset_hwm(pid: int) -> bool:
    """Reset the peak (VmHWM) to the current resident size (Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- ports, files ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_mp4(path: Path, target_bytes: int) -> int:
    """A real 720p H.264 MP4 of about ``target_bytes``; returns its size.

    Up to 32 MB: twelve seconds at the bitrate that gives that size (like a Sora result:
    4-12 s of 720p at a few Mbit/s). Larger: near-lossless noise, which cannot be
    compressed, for as many frames as it takes (a stress test for streaming).
    """
    import av

    width, height, fps = 1280, 720, 24
    pool = [
        av.VideoFrame.from_bytes(os.urandom(width * height * 4), width, height,
                                 format="rgba").reformat(format="yuv420p")
        for _ in range(8)
    ]
    paced = target_bytes < 32 * MIB
    seconds = 12
    written = 0
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if paced:
            stream.bit_rate = int(target_bytes * 8 / seconds)
            stream.options = {"preset": "ultrafast"}
        else:
            stream.options = {"preset": "ultrafast", "crf": "4"}
        index = 0
        while (index < seconds * fps) if paced else (written < target_bytes or index < 8):
            frame = pool[index % len(pool)]
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                written += packet.size
                out.mux(packet)
            index += 1
        for packet in stream.encode(None):
            out.mux(packet)
    return path.stat().st_size


# -- subprocesses ---------------------------------------------------------------------------


@dataclass
class Child:
    proc: asyncio.subprocess.Process
    log_path: Path
    webhook_port: int = 0
    db_path: Path | None = None
    spawned_at: float = 0.0  # time.monotonic() just before the process was started
    healthy_at: float = 0.0  # time.monotonic() of the first healthy /healthz answer

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


def base_env(fd: Any) -> dict[str, str]:
    """The environment of a bot subprocess: nothing inherited that names a provider or a
    Discord endpoint, everything pointed at the fake."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DISCORD_TOKEN=fd.token,
        DISCORD_API_BASE_URL=fd.api_base,
        DISCORD_GATEWAY_URL=fd.gateway_url,
    )
    return env


async def _spawn(args: Sequence[str], env: dict[str, str], cwd: Path, log_name: str) -> Child:
    log_path = cwd / log_name
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )
    return Child(proc, log_path)


async def start_bot(fd: Any, work: Path, settings: dict[str, str], *,
                    within: float = 60.0) -> Child:
    """``python -m bot`` against the fake, its database in ``work``; waits until its
    /healthz says the database and the Discord connection are up."""
    work.mkdir(parents=True, exist_ok=True)
    port = int(settings.get("WEBHOOK_PORT") or free_port())  # given: callbacks are aimed at it
    env = base_env(fd)
    env.update(
        DATABASE_PATH=str(work / "bot.sqlite3"),
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=str(port),
        LOG_LEVEL="INFO",
    )
    env.update(settings)
    spawned_at = time.monotonic()
    child = await _spawn(["-m", "bot"], env, work, "bot.log")
    child.spawned_at = spawned_at
    child.webhook_port, child.db_path = port, work / "bot.sqlite3"
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as client:
        while True:
            if child.proc.returncode is not None:
                raise RuntimeError(f"the bot exited ({child.proc.returncode}):\n"
                                   f"{child.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with client.get(f"http://127.0.0.1:{port}/healthz",
                                      timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        child.healthy_at = time.monotonic()
                        break
            if time.monotonic() > deadline:
                await child.kill()
                raise TimeoutError(f"the bot was not healthy within {within} s:\n"
                                   f"{child.log_tail()}")
            await asyncio.sleep(0.02)
    return child


async def start_floor_bot(fd: Any, work: Path, *, within: float = 30.0) -> Child:
    """The floor: a minimal discord.py bot that only defers (bench/floor_bot.py)."""
    work.mkdir(parents=True, exist_ok=True)
    child = await _spawn(["-m", "bench.floor_bot"], base_env(fd), work, "floor.log")
    deadline = time.monotonic() + within
    while "READY" not in child.log_tail(200):
        if child.proc.returncode is not None:
            raise RuntimeError(f"the floor bot exited:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            await child.kill()
            raise TimeoutError(f"the floor bot was not ready:\n{child.log_tail()}")
        await asyncio.sleep(0.05)
    return child


def sqlite_count(db: Path, sql: str, args: Sequence[Any] = ()) -> int:
    """A read on the bot's database from outside (WAL: never blocks the bot)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        row = con.execute(sql, args).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def quiet_logs() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=io.StringIO())
    logging.getLogger().setLevel(logging.ERROR)


def run_report(name: str, measure: Callable[[Path], Coroutine[Any, Any, Report]]) -> int:
    """``python -m bench.<name>``: run ``measure`` in a fresh temporary folder, print its
    table and the machine line; the exit status says whether every goal held."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        report = asyncio.run(measure(Path(tmp)))
    print(report.table())
    print(f"\n{machine_note()}")
    return 0 if report.ok else 1
