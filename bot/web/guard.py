"""The webhook server's guard in front of aiohttp: at most ``max_connections`` open at
once, a deadline for every request's headers, and the oldest connection waiting for
headers displaced by a new one at the cap (see ``bot.web.server``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.web.framing import RequestFraming

log = logging.getLogger(__name__)

FD_LIMIT_WANTED = 65536  # when the hard limit is unlimited


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit; return (before, after).

    None where the platform has no such limit (Windows) or refuses the change.
    """
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_WANTED if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft  # already as high as it goes: never lower it
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS caps it below an unlimited hard limit
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return None
    log.info("raised the open-files limit from %d to %d", soft, target)
    return soft, target


class _Guarded(asyncio.Protocol):
    """One connection, passed through to aiohttp's handler once admitted by the guard.

    It counts the request heads it has seen end (by HTTP/1.1 framing: a blank line inside
    a body, or between requests, is not the end of a head) and the requests aiohttp has
    finished, each once its response is written; while every request seen has finished,
    the connection waits for the next request's headers: it has ``header_timeout_s`` from
    the end of the previous response to send them and may be displaced meanwhile. A
    request whose head has come (its body being read, its handler running, its response
    being written, or queued behind another) keeps the connection busy.
    """

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._framing = RequestFraming()
        self.headers_seen = 0  # ends of request headers received
        self.requests_done = 0  # requests aiohttp has answered, the response written
        self._responding_task: asyncio.Task[Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._guard.admit(self):
            transport.abort()
            return
        self._wait_for_headers()
        self._inner = self._guard.make_handler()
        self._inner.connection_made(transport)

    def _wait_for_headers(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._guard.header_timeout_s, self._headers_too_slow)
        self._guard.waiting(self)

    def responding(self, task: asyncio.Task[Any] | None) -> None:
        """A response starts in ``task``: the request is done when the task ends.

        aiohttp runs each request in a task of its own that ends once the response is
        written (handed to the transport); ``None`` when the response is not made in such
        a task, and then the request counts as done now.
        """
        if self.headers_seen <= self.requests_done:  # a head the framing did not count
            self.headers_seen = self.requests_done + 1
            self._headers_came()
        if task is None:
            self._request_done()
        elif task is not self._responding_task:
            self._responding_task = task
            task.add_done_callback(self._request_done)

    def _request_done(self, task: object = None) -> None:
        """aiohttp answered one request: with none pending, the next one's headers are due."""
        self._responding_task = None
        self.requests_done += 1
        if self.requests_done >= self.headers_seen and self.transport is not None \
                and not self.transport.is_closing():
            self._wait_for_headers()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        ends = self._framing.feed(data)
        if ends:
            self.headers_seen += ends
            self._headers_came()
        self._inner.data_received(data)

    def _headers_came(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.headers_done(self)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.closed(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def drop(self) -> None:
        """Close at once (no request is in progress on it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def _headers_too_slow(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        self._guard.closed(self)
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """The protocol factory in front of aiohttp's: caps open connections and gives each
    ``header_timeout_s`` to send every request's headers."""

    def __init__(self, server: web.Server, *, limit: int, header_timeout_s: float) -> None:
        self._server = server
        self._limit = limit
        self.header_timeout_s = header_timeout_s
        self._open: set[_Guarded] = set()
        self._waiting: dict[_Guarded, None] = {}  # waiting for headers; longest first
        self._by_transport: dict[asyncio.BaseTransport, _Guarded] = {}
        self.timed_out = self.displaced = self.refused = 0

    def __call__(self) -> _Guarded:
        return _Guarded(self)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def make_handler(self) -> asyncio.Protocol:
        return self._server()

    def admit(self, conn: _Guarded) -> bool:
        if len(self._open) >= self._limit:
            oldest = next(iter(self._waiting), None)
            if oldest is None:  # every open connection is busy with a request
                self.refused += 1
                log.warning("webhook server: %d connections open; refusing one", self._limit)
                return False
            self.displaced += 1
            self.closed(oldest)
            oldest.drop()
        self._open.add(conn)
        if conn.transport is not None:
            self._by_transport[conn.transport] = conn
        return True

    def waiting(self, conn: _Guarded) -> None:
        if conn in self._open:
            self._waiting[conn] = None

    def headers_done(self, conn: _Guarded) -> None:
        self._waiting.pop(conn, None)

    def responding(self, request: web.BaseRequest) -> None:
        """``request``'s response starts; called in the task that writes it."""
        transport = request.transport
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is not None:
            task = asyncio.current_task()
            # the request's own task, not the connection's (aiohttp's request.task)
            conn.responding(None if task is request.task else task)

    def closed(self, conn: _Guarded) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def close_all(self) -> None:
        for conn in list(self._open):
            self.closed(conn)
            conn.drop()
