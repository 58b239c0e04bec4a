from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tenacity import wait_fixed

from bot.providers.download import DownloadError, DownloadTooLarge, download_to_file, redact_url

BODY = bytes(range(256)) * 400  # 100 KiB


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.url = ""
        self.runner: web.AppRunner | None = None

    def hit(self, request: web.Request) -> int:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return self.hits[request.path]

    async def ok(self, request: web.Request) -> web.Response:
        self.hit(request)
        return web.Response(body=BODY, content_type="video/mp4")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        """No Content-Length: the size is only known by counting."""
        self.hit(request)
        size = int(request.query.get("size", "0"))
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while sent < size:
                piece = b"\x00" * min(64 * 1024, size - sent)
                await response.write(piece)
                sent += len(piece)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return response
        await response.write_eof()
        return response

    async def flaky(self, request: web.Request) -> web.Response:
        if self.hit(request) == 1:
            return web.Response(status=500, text="upstream hiccup")
        return web.Response(body=BODY)

    async def busy_then_ok(self, request: web.Request) -> web.Response:
        if self.hit(request) <= 2:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.Response(body=BODY)

    async def cut_then_ok(self, request: web.Request) -> web.StreamResponse:
        """The first answer promises the whole body but the connection drops midway."""
        if self.hit(request) > 1:
            return web.Response(body=BODY)
        response = web.StreamResponse()
        response.content_length = len(BODY)
        await response.prepare(request)
        await response.write(BODY[:10_000])
        assert request.transport is not None
        request.transport.close()
        return response

    async def always_500(self, request: web.Request) -> web.Response:
        self.hit(request)
        return web.Response(status=503)

    async def gone(self, request: web.Request) -> web.Response:
        self.hit(request)
        return web.Response(status=403, text="<Error>Request has expired</Error>")

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_get("/ok.mp4", self.ok)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_get("/flaky", self.flaky)
        app.router.add_get("/busy", self.busy_then_ok)
        app.router.add_get("/down", self.always_500)
        app.router.add_get("/cut", self.cut_then_ok)
        app.router.add_get("/gone", self.gone)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.providers.download.RETRY_WAIT", wait_fixed(0.01))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await Server().start()
    yield srv
    assert srv.runner is not None
    await srv.runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as sess:
        yield sess


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_download_ok(server: Server, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    dest = tmp_path / "video.mp4"
    size = await download_to_file(session, f"{server.url}/ok.mp4?sig=abc", dest, 1_000_000)
    assert size == len(BODY)
    assert dest.read_bytes() == BODY
    assert leftovers(tmp_path) == ["video.mp4"]


async def test_body_exactly_at_the_cap_is_fine(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    assert await download_to_file(session, f"{server.url}/ok.mp4", dest, len(BODY)) == len(BODY)


async def test_content_length_over_the_cap_is_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    with pytest.raises(DownloadTooLarge) as err:
        await download_to_file(session, f"{server.url}/ok.mp4", dest, len(BODY) - 1)
    assert "Content-Length" in str(err.value)
    assert leftovers(tmp_path) == []
    assert server.hits["/ok.mp4"] == 1  # not retried


async def test_chunked_body_over_the_cap_is_cut_off(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    url = f"{server.url}/chunked?size={50 * 1024 * 1024}"
    with pytest.raises(DownloadTooLarge, match="passed the cap"):
        await download_to_file(session, url, dest, 1024 * 1024)
    assert leftovers(tmp_path) == []
    assert server.hits["/chunked"] == 1


async def test_chunked_body_under_the_cap_is_fine(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "sub" / "video.mp4"
    size = 3 * 1024 * 1024 + 5
    assert await download_to_file(session, f"{server.url}/chunked?size={size}", dest, size) == size
    assert dest.stat().st_size == size


async def test_500_then_ok_is_retried(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    assert await download_to_file(session, f"{server.url}/flaky", dest, 1_000_000) == len(BODY)
    assert server.hits["/flaky"] == 2
    assert dest.read_bytes() == BODY


async def test_body_cut_short_is_retried(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    assert await download_to_file(session, f"{server.url}/cut", dest, 1_000_000) == len(BODY)
    assert server.hits["/cut"] == 2
    assert dest.read_bytes() == BODY
    assert leftovers(tmp_path) == ["video.mp4"]


async def test_429_is_retried(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    assert await download_to_file(session, f"{server.url}/busy", dest, 1_000_000) == len(BODY)
    assert server.hits["/busy"] == 3


async def test_persistent_5xx_gives_up(
    server: Server,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dest = tmp_path / "video.mp4"
    with pytest.raises(DownloadError) as err:
        await download_to_file(session, f"{server.url}/down?X-Signature=s3cr3t", dest, 1_000)
    assert not isinstance(err.value, DownloadTooLarge)
    assert server.hits["/down"] == 4
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "/down" in ours  # the path is logged, the query string never
    assert "s3cr3t" not in ours and "s3cr3t" not in str(err.value)
    assert leftovers(tmp_path) == []


async def test_expired_link_is_not_retried(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="no longer works"):
        await download_to_file(session, f"{server.url}/gone", tmp_path / "v.mp4", 1_000)
    assert server.hits["/gone"] == 1


async def test_connection_refused_gives_up(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        await download_to_file(session, "http://127.0.0.1:9/x.mp4", tmp_path / "v.mp4", 1_000)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/video.mp4",
        "sandbox://sandbox-0.mp4",
        "/relative/path.mp4",
        "http:///no-host",
        "http://[::1/broken",
        "",
    ],
)
async def test_non_http_urls_are_refused(
    session: aiohttp.ClientSession, tmp_path: Path, url: str
) -> None:
    with pytest.raises(DownloadError):
        await download_to_file(session, url, tmp_path / "v.mp4", 1_000)
    assert leftovers(tmp_path) == []


def test_redact_url_keeps_no_secrets() -> None:
    url = "https://user:pw@cdn.example.com:8443/v/1.mp4?Signature=abc&Expires=1#frag"
    assert redact_url(url) == "https://cdn.example.com:8443/v/1.mp4"
