from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from tenacity import wait_fixed

from bot.providers.download import (
    MAX_REDIRECTS,
    DownloadError,
    DownloadTooLarge,
    RedirectRefused,
    check_redirect,
    download_to_file,
    download_video,
    is_public_address,
    redact_url,
)

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

    async def redirect(self, request: web.Request) -> web.Response:
        """302 to the ``to`` query parameter (relative or absolute)."""
        self.hit(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(self, request: web.Request) -> web.Response:
        self.hit(request)
        raise web.HTTPFound("/loop")

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop", self.loop)
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


@pytest.mark.parametrize("path", ["/ok.mp4", f"/chunked?size={len(BODY)}"])
async def test_a_small_video_is_kept_in_memory_and_nothing_is_written(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path, path: str
) -> None:
    dest = tmp_path / "video.mp4"
    data = await download_video(session, f"{server.url}{path}", dest, 1_000_000,
                                keep_in_memory=len(BODY))
    assert data is not None and len(data) == len(BODY)
    assert leftovers(tmp_path) == []


async def test_a_video_over_the_memory_size_goes_to_the_file(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "video.mp4"
    data = await download_video(session, f"{server.url}/ok.mp4", dest, 1_000_000,
                                keep_in_memory=len(BODY) - 1)
    assert data is None
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


# ----- redirects ------------------------------------------------------------------------------
def redirect_to(server: Server, target: str) -> str:
    return f"{server.url}/redirect?{urlencode({'to': target})}"


@pytest.mark.parametrize("target", ["/ok.mp4", "absolute"])
async def test_a_redirect_to_the_same_server_is_followed(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path, target: str
) -> None:
    """The provider's URL named this (loopback) server: a redirect back to it is fine."""
    to = f"{server.url}/ok.mp4" if target == "absolute" else target
    url = redirect_to(server, redirect_to(server, to))  # two hops
    assert await download_to_file(session, url, tmp_path / "v.mp4", len(BODY)) == len(BODY)
    assert (tmp_path / "v.mp4").read_bytes() == BODY
    assert server.hits == {"/redirect": 2, "/ok.mp4": 1}


async def test_a_redirect_to_another_private_server_is_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Another loopback server (an internal service, say) is off limits to a redirect:
    it is never contacted, and nothing is retried."""
    inner = await Server().start()
    try:
        for target in (f"{inner.url}/ok.mp4", f"http://localhost:{server.url.rsplit(':', 1)[1]}"
                       "/ok.mp4"):
            with pytest.raises(RedirectRefused) as info:
                await download_to_file(session, redirect_to(server, target),
                                       tmp_path / "v.mp4", len(BODY))
            assert "non-public" in (info.value.detail or "")
        assert inner.hits == {}
        assert server.hits == {"/redirect": 2}  # one request each, never retried
        assert leftovers(tmp_path) == []
    finally:
        assert inner.runner is not None
        await inner.runner.cleanup()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/v.mp4",
                                    "gopher://127.0.0.1:70/x"])
async def test_a_redirect_to_another_scheme_is_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path, target: str
) -> None:
    with pytest.raises(RedirectRefused):
        await download_to_file(session, redirect_to(server, target), tmp_path / "v.mp4", 10)
    assert leftovers(tmp_path) == []


async def test_a_redirect_loop_ends(server: Server, session: aiohttp.ClientSession,
                                    tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="redirects"):
        await download_to_file(session, f"{server.url}/loop", tmp_path / "v.mp4", 10)
    assert server.hits == {"/loop": MAX_REDIRECTS + 1}  # and not retried


@pytest.mark.parametrize(
    ("origin", "target", "allowed"),
    [
        # From a public server: only public targets (IP literals: no DNS needed).
        ("https://93.184.216.34/v.mp4", "https://8.8.8.8/v.mp4", True),
        ("https://93.184.216.34/v.mp4", "http://10.1.2.3/v.mp4", False),
        ("https://93.184.216.34/v.mp4", "http://169.254.169.254/latest/meta-data", False),
        ("https://93.184.216.34/v.mp4", "http://127.0.0.1:8080/x", False),
        ("https://93.184.216.34/v.mp4", "http://[::1]/x", False),
        ("https://93.184.216.34/v.mp4", "http://[::ffff:127.0.0.1]/x", False),
        ("https://93.184.216.34/v.mp4", "http://100.64.0.1/x", False),
        ("https://93.184.216.34/v.mp4", "http://0.0.0.0/x", False),
        # From a loopback relay: the same server, or public addresses.
        ("http://127.0.0.1:9000/a", "http://127.0.0.1:9000/b", True),
        ("http://127.0.0.1:9000/a", "http://127.0.0.1:9001/b", False),
        ("http://127.0.0.1:9000/a", "https://8.8.4.4/b", True),
    ],
)
async def test_the_redirect_rule(origin: str, target: str, allowed: bool) -> None:
    if allowed:
        await check_redirect(origin, target)
    else:
        with pytest.raises(RedirectRefused):
            await check_redirect(origin, target)


def test_public_addresses() -> None:
    assert is_public_address("8.8.8.8") and is_public_address("2606:4700::1111")
    for address in ("10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1",
                    "::1", "fe80::1%eth0", "fc00::1", "224.0.0.1", "0.0.0.0", "not an ip"):
        assert not is_public_address(address), address
