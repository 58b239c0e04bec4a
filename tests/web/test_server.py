"""The webhook server under connections that never finish a request (descriptor
starvation), and the descriptor limit raised at start."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.web.server import WebhookServer

HALF_OPEN = 200
CAP = 20
HEADER_TIMEOUT_S = 0.5


async def _no_callback(provider: str, token: str, body: bytes, headers: object) -> bool:
    return False


async def _healthy() -> dict[str, bool]:
    return {"database": True}


@pytest.fixture
async def server() -> AsyncIterator[WebhookServer]:
    srv = WebhookServer("127.0.0.1", 0, on_callback=_no_callback, health=_healthy,
                        header_timeout_s=HEADER_TIMEOUT_S, max_connections=CAP)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and send half a request header, never the rest."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(), timeout=10)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return data == b""


async def test_half_open_connections_neither_starve_nor_linger(server: WebhookServer) -> None:
    conns = [await _half_open(server.port) for _ in range(HALF_OPEN)]
    try:
        guard = server.guard
        assert guard is not None
        assert guard.open_connections <= CAP  # never more than the cap held open
        async with aiohttp.ClientSession() as client:
            for _ in range(3):  # a fresh connection each time, while the flood sits there
                async with client.get(f"http://127.0.0.1:{server.port}/healthz",
                                      timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    assert resp.status == 200 and (await resp.json())["ok"] is True
        # Every half-open connection is closed: displaced at the cap or, for the last
        # ones, after the header timeout.
        closed = await asyncio.gather(*(_closed_by_server(r) for r, _ in conns))
        assert all(closed), f"{closed.count(False)} half-open connections were left open"
        assert guard.timed_out >= 1 and guard.displaced >= HALF_OPEN - CAP
        assert guard.open_connections <= 1  # at most the client's idle keep-alive one
    finally:
        for _, writer in conns:
            writer.close()


async def test_a_slow_but_complete_request_is_served(server: WebhookServer) -> None:
    """Headers in two pieces, well within the timeout: answered normally."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"Connection: close\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), timeout=5)
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="RLIMIT_NOFILE is a Unix limit")
def test_the_soft_descriptor_limit_is_raised_toward_the_hard_limit(tmp_path: Path) -> None:
    script = (
        "import resource\n"
        "from bot.web.guard import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "raise_open_files_limit()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60, check=True).stdout.split()
    soft, hard = int(out[0]), int(out[1])
    import resource

    expected = 65536 if hard == resource.RLIM_INFINITY else hard
    assert soft == expected > 64


SERVE = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))  # soft = hard: nothing to raise
from bot.web.server import WebhookServer

async def main():
    async def no_callback(*args):
        return False
    async def healthy():
        return {"database": True}
    kwargs = {"max_connections": 32, "header_timeout_s": 60} if sys.argv[1] == "capped" else {}
    srv = WebhookServer("127.0.0.1", 0, on_callback=no_callback, health=healthy, **kwargs)
    await srv.start()
    print(srv.port, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def _settled_descriptor_count(pid: int) -> int:
    """The server's open descriptors once it has taken in the flood (unchanged for 0.5 s;
    at most 10 s of waiting)."""
    counts: list[int] = []
    for _ in range(100):
        counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        if len(counts) > 5 and len(set(counts[-6:])) == 1:
            break
        await asyncio.sleep(0.1)
    return counts[-1]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
async def test_healthz_answers_under_a_descriptor_limit_flooded_by_half_open_connections(
    tmp_path: Path,
) -> None:
    """The reported failure: a server process limited to 128 descriptors, 200 connections
    each sending half a header. With the cap (32 here, and a header timeout too long to
    help), /healthz still answers on a fresh connection."""
    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE, "capped", cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), timeout=30))
        for _ in range(HALF_OPEN):
            conns.append(await _half_open(port))
        held = await _settled_descriptor_count(proc.pid)
        assert held < 128, "the server used up its descriptors"
        async with aiohttp.ClientSession() as client, client.get(
            f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            assert resp.status == 200
    finally:
        for _, writer in conns:
            writer.close()
        proc.kill()
        await proc.wait()


GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# First requests after which a connection is kept alive, each with bytes that look like
# the end of a request head but are not one (except the plain GET).
FIRST_REQUESTS = {
    "get": (GET, b""),
    "body-with-blank-lines": (b"POST /callbacks/apixo/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Content-Length: 12\r\n\r\n{\r\n\r\n\"a\": 1}", b""),
    "chunked-body": (b"POST /callbacks/apixo/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", b""),
    "empty-lines-between": (GET, b"\r\n\r\n"),
    "get-with-body": (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\n"
                      b"\r\n\r\n", b""),
    # answered by aiohttp (417) before any of the application's own code runs
    "unknown-expect": (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\n\r\n", b""),
}


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One response's status line (every answer here has a Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head.split(b"\r\n")[0]


async def _keep_alive_then_trickle(port: int, case: str) -> tuple[asyncio.StreamReader,
                                                                   asyncio.StreamWriter]:
    """One quick request on a kept-alive connection, then the next request's headers a
    byte at a time (forever, as far as the server knows)."""
    first, between = FIRST_REQUESTS[case]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    await writer.drain()
    status = await _read_response(reader)
    assert status.startswith(b"HTTP/1.1 ") and b" 400 " not in status
    writer.write(between + b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def _trickle(writer: asyncio.StreamWriter, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.1)


async def _stop_trickling(tricklers: list[asyncio.Task[None]],
                          conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
                          ) -> None:
    for task in tricklers:
        task.cancel()
    await asyncio.gather(*tricklers, return_exceptions=True)
    for _, writer in conns:
        writer.close()


@pytest.mark.parametrize("case", FIRST_REQUESTS)
async def test_a_kept_alive_connection_trickling_its_next_headers_is_closed_at_the_deadline(
    server: WebhookServer, case: str,
) -> None:
    """It was held until aiohttp's keep-alive timeout (15 s), deadline or not."""
    conn = await _keep_alive_then_trickle(server.port, case)
    trickler = asyncio.create_task(_trickle(conn[1], 12.0))
    try:
        assert await _closed_by_server(conn[0])  # within 10 s: while it still trickles
        assert server.guard is not None and server.guard.timed_out == 1
    finally:
        await _stop_trickling([trickler], [conn])


@pytest.mark.parametrize("case", FIRST_REQUESTS)
async def test_with_every_place_held_by_trickling_connections_a_callback_gets_in(
    case: str,
) -> None:
    """At the cap, a new connection displaces a kept-alive one trickling its next request's
    headers (the deadline is long here: displacing, not the deadline, makes the room)."""
    srv = WebhookServer("127.0.0.1", 0, on_callback=_no_callback, health=_healthy,
                        header_timeout_s=30.0, max_connections=2)
    await srv.start()
    try:
        slow = [await _keep_alive_then_trickle(srv.port, case) for _ in range(2)]
        tricklers = [asyncio.create_task(_trickle(w, 5.0)) for _, w in slow]
        try:
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession() as client, client.post(
                    f"http://127.0.0.1:{srv.port}/callbacks/apixo/token", data=b"{}",
                    timeout=aiohttp.ClientTimeout(total=5)) as resp:
                assert resp.status == 404  # served (an unknown job), not refused
            assert srv.guard is not None
            assert (srv.guard.displaced, srv.guard.refused) == (1, 0)
            assert await _closed_by_server(slow[0][0])  # the oldest one made the room
        finally:
            await _stop_trickling(tricklers, slow)
    finally:
        await srv.stop()


async def _connect_with_small_receive_buffer(port: int) -> tuple[asyncio.StreamReader,
                                                                  asyncio.StreamWriter]:
    """A client whose socket takes little before the server's writes back up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)),
                           5)
    return await asyncio.open_connection(sock=sock)


async def test_a_slow_image_download_is_neither_cut_at_the_deadline_nor_displaced() -> None:
    """A provider fetching a large image slowly is in the middle of a request until the
    response is written: no header deadline runs (it was counted from the handler's return,
    before aiohttp wrote anything) and a new connection at the cap is refused rather than
    given its place."""
    srv = WebhookServer("127.0.0.1", 0, on_callback=_no_callback, health=_healthy,
                        header_timeout_s=HEADER_TIMEOUT_S, max_connections=1)
    await srv.start()
    image = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than the sockets buffer
    await srv.images.put("big.png", image, "image/png", None)
    reader, writer = await _connect_with_small_receive_buffer(srv.port)
    try:
        writer.write(b"GET /images/big.png HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3 * HEADER_TIMEOUT_S)  # reading nothing meanwhile
        other, _ = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await _closed_by_server(other)  # refused: every place is busy
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(len(image)), 30) == image
        assert srv.guard is not None
        assert (srv.guard.timed_out, srv.guard.displaced, srv.guard.refused) == (0, 0, 1)
    finally:
        writer.close()
        await srv.stop()


async def test_a_callback_whose_body_is_still_coming_is_not_displaced() -> None:
    srv = WebhookServer("127.0.0.1", 0, on_callback=_no_callback, health=_healthy,
                        header_timeout_s=HEADER_TIMEOUT_S, max_connections=1)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(b"POST /callbacks/apixo/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 2\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3 * HEADER_TIMEOUT_S)  # past the header deadline, body unsent
        other, _ = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await _closed_by_server(other)  # refused: every place is busy
        writer.write(b"{}")
        assert await _read_response(reader) == b"HTTP/1.1 404 Not Found"
        assert srv.guard is not None
        assert (srv.guard.timed_out, srv.guard.displaced, srv.guard.refused) == (0, 0, 1)
    finally:
        writer.close()
        await srv.stop()


async def test_pipelined_and_kept_alive_requests_are_all_served(server: WebhookServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    await writer.drain()
    for _ in range(3):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await asyncio.wait_for(reader.readexactly(length), 5)
    await asyncio.sleep(HEADER_TIMEOUT_S / 2)  # inside the deadline, a fourth one
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
