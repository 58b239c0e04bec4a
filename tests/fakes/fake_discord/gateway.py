"""The fake gateway: a websocket at /gateway speaking Discord's gateway protocol (v10, JSON).

Transport: ``compress=zlib-stream`` gets one zlib compressobj per connection, each message
flushed with Z_SYNC_FLUSH (ends in 00 00 ff ff), sent as binary; ``zstd-stream`` is served
when a zstd module is importable (one frame-flushed stream per connection), otherwise the fake
answers with uncompressed text frames, which discord.py accepts whatever it asked for (its
``received_message`` only decompresses binary frames). No ``compress`` -> text frames.

Session: HELLO (op 10) -> IDENTIFY (op 2; token, intents checked: 4004 / 4013 / 4014) ->
READY (seq 1) then one GUILD_CREATE per guild. Heartbeats (op 1) get op 11. RESUME (op 6)
replays the events the session missed and sends RESUMED; an unknown or expired session gets
INVALID_SESSION (op 9, d=false). Request Guild Members (op 8) gets GUILD_MEMBERS_CHUNK.
Sessions survive their connection for ``resume_window_s`` and buffer dispatches meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger(__name__)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION = 6, 7, 8, 9
OP_HELLO, OP_HEARTBEAT_ACK = 10, 11

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT
ALL_INTENTS = (1 << 26) - 1
BUFFER_LIMIT = 2000


def _zstd_compressor() -> Any | None:
    try:
        import zstandard  # type: ignore[import-not-found]

        obj = zstandard.ZstdCompressor().compressobj()
        return lambda data: obj.compress(data) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    except ImportError:
        pass
    try:
        from compression import zstd  # type: ignore[import-not-found]

        comp = zstd.ZstdCompressor()
        return lambda data: comp.compress(data, zstd.ZstdCompressor.FLUSH_BLOCK)
    except ImportError:
        return None


@dataclass
class Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: list[tuple[int, dict[str, Any], Callable[[], None] | None]] = field(
        default_factory=list)
    conn: Connection | None = None
    closed_at: float | None = None
    identified_at: float = field(default_factory=time.monotonic)

    def wants(self, intent: int | None) -> bool:
        return intent is None or bool(self.intents & intent)

    def serves(self, guild_id: int | None) -> bool:
        """Discord routes a server's events to shard ``(guild_id >> 22) % shard_count``."""
        if guild_id is None or not self.shard or self.shard[1] <= 1:
            return True
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


def shard_of(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


def _guild_of(data: dict[str, Any]) -> int | None:
    raw = data.get("guild_id")
    return int(raw) if raw is not None else None


class Connection:
    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compress = compress
        self.session: Session | None = None
        self.heartbeats = 0
        self.closed_by_client = True
        self._queue: asyncio.Queue[tuple[dict[str, Any], Callable[[], None] | None]] = (
            asyncio.Queue())
        self._encode: Callable[[bytes], bytes] | None = None
        if compress == "zlib-stream":
            zobj = zlib.compressobj()
            self._encode = lambda data: zobj.compress(data) + zobj.flush(zlib.Z_SYNC_FLUSH)
        elif compress == "zstd-stream":
            self._encode = _zstd_compressor()
        self.writer = asyncio.create_task(self._write_loop())

    def send(self, frame: dict[str, Any], on_sent: Callable[[], None] | None = None) -> None:
        self._queue.put_nowait((frame, on_sent))

    async def _write_loop(self) -> None:
        while True:
            frame, on_sent = await self._queue.get()
            try:
                await self._write(frame, on_sent)
            finally:
                self._queue.task_done()
            # Let the fake's HTTP side run between frames (as Discord's REST API does not
            # wait for a gateway write): under a burst of dispatches, interaction callbacks
            # are then received, and timed, when they arrive rather than after the burst.
            await asyncio.sleep(0)

    async def _write(self, frame: dict[str, Any], on_sent: Callable[[], None] | None) -> None:
        if self.ws.closed:
            return
        data = json.dumps(frame, separators=(",", ":"))
        try:
            if self._encode is not None:
                await self.ws.send_bytes(self._encode(data.encode()))
            else:
                await self.ws.send_str(data)
        except (ConnectionError, RuntimeError):
            return
        if on_sent is not None:
            on_sent()

    async def drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._queue.join()

    async def close(self, code: int, message: str = "") -> None:
        self.closed_by_client = False
        await self.drain()
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
        if not self.ws.closed:
            await self.ws.close(code=code, message=message.encode())


class Gateway:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.heartbeat_interval_ms = 41250
        self.resume_window_s = 120.0
        self.allowed_privileged_intents = INTENT_GUILD_MEMBERS | INTENT_MESSAGE_CONTENT
        self.identifies = 0
        self.resumes = 0
        self.connects: list[dict[str, str]] = []  # query of every websocket connection

    # -- public ---------------------------------------------------------------------------
    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.conn is not None]

    def resumable_sessions(self) -> list[Session]:
        now = time.monotonic()
        return [s for s in self.sessions.values() if s.conn is not None
                or (s.closed_at is not None and now - s.closed_at < self.resume_window_s)]

    def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None,
                 on_sent: Callable[[], None] | None = None) -> int:
        """Queue an event to every session that may receive it (a server's events go only
        to the sessions of its shard); returns how many."""
        count = 0
        guild_id = _guild_of(data)
        for session in self.resumable_sessions():
            if session.wants(intent) and session.serves(guild_id):
                self._dispatch_to(session, event, data, on_sent)
                count += 1
        return count

    async def send_op(self, op: int, data: Any = None) -> None:
        for conn in list(self.connections):
            conn.send({"op": op, "d": data, "s": None, "t": None})

    def dispatch_guild_create(self, guild: Any) -> None:
        for session in self.resumable_sessions():
            if not session.serves(guild.id):
                continue
            self._dispatch_to(session, "GUILD_CREATE", self.fd.world.guild_create_payload(
                guild, all_members=bool(session.intents & INTENT_GUILD_MEMBERS)))

    async def drop_connections(self, code: int = 4000) -> None:
        for conn in list(self.connections):
            await conn.close(code, "dropped by the fake")

    def invalidate_sessions(self) -> None:
        for session in self.sessions.values():
            if session.conn is not None:
                session.conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
        self.sessions.clear()

    async def close(self) -> None:
        for conn in list(self.connections):
            await conn.close(1001, "going away")

    # -- protocol -------------------------------------------------------------------------
    def _dispatch_to(self, session: Session, event: str, data: dict[str, Any],
                     on_sent: Callable[[], None] | None = None) -> None:
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append((session.seq, frame, on_sent))
        del session.buffer[:-BUFFER_LIMIT]
        if session.conn is not None:
            session.conn.send(frame, on_sent)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self.connects.append(dict(request.query))
        compress = request.query.get("compress")
        if compress not in ("zlib-stream", "zstd-stream"):
            compress = None
        conn = Connection(ws, compress)
        self.connections.add(conn)
        self.fd.changed()
        try:
            if request.query.get("v", "10") not in ("9", "10"):
                await conn.close(4012, "Invalid API version")
                return ws
            if request.query.get("encoding", "json") != "json":
                await conn.close(4002, "Decode error")
                return ws
            conn.send({"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms,
                                             "_trace": ["fake-discord"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await conn.close(4002, "Decode error")
                    break
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, "Decode error")
                    break
                if not await self._on_message(conn, payload):
                    break
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.closed_at = time.monotonic()
                if ws.close_code in (1000, 1001) and conn.closed_by_client:
                    # a client closing with 1000/1001 ends its session (Discord's rule)
                    self.sessions.pop(session.id, None)
            conn.writer.cancel()
            self.fd.changed()
        return ws

    async def _on_message(self, conn: Connection, payload: dict[str, Any]) -> bool:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            conn.heartbeats += 1
            conn.send({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            return True
        if op == OP_IDENTIFY:
            return await self._identify(conn, data or {})
        if op == OP_RESUME:
            return await self._resume(conn, data or {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated")
            return False
        if op == OP_REQUEST_MEMBERS:
            self._members_chunk(conn.session, data or {})
            return True
        if op in (OP_PRESENCE, OP_VOICE):
            return True
        await conn.close(4001, "Unknown opcode")
        return False

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> bool:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated")
            return False
        if data.get("token") != self.fd.token:
            await conn.close(4004, "Authentication failed")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            await conn.close(4013, "Invalid intent(s)")
            return False
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.close(4014, "Disallowed intent(s)")
            return False
        shard = data.get("shard")
        if shard is not None and not (
            isinstance(shard, list) and len(shard) == 2 and all(isinstance(n, int) for n in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await conn.close(4010, "Invalid shard")
            return False
        self.identifies += 1
        session = Session(secrets.token_hex(16), intents, shard)
        self.sessions[session.id] = session
        session.conn = conn
        conn.session = session
        fd = self.fd
        ready = {
            "v": 10, "user": fd.world.bot.payload() | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in fd.world.guilds
                       if session.serves(g)],
            "session_id": session.id, "session_type": "normal",
            "resume_gateway_url": fd.gateway_url, "shard": data.get("shard") or [0, 1],
            "application": {"id": str(fd.application_id), "flags": fd.application_flags},
            "private_channels": [], "relationships": [], "presences": [],
            "guild_join_requests": [], "geo_ordered_rtc_regions": [], "user_settings": {},
            "auth": {}, "_trace": ["fake-discord"],
        }
        self._dispatch_to(session, "READY", ready)
        for guild in fd.world.guilds.values():
            if not session.serves(guild.id):
                continue
            self._dispatch_to(session, "GUILD_CREATE", fd.world.guild_create_payload(
                guild, all_members=bool(intents & INTENT_GUILD_MEMBERS)))
        fd.changed()
        return True

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> bool:
        session = self.sessions.get(str(data.get("session_id")))
        fresh = session is not None and session in self.resumable_sessions()
        if data.get("token") != self.fd.token:
            await conn.close(4004, "Authentication failed")
            return False
        if session is None or not fresh or conn.session is not None:
            conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return True
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            session.conn = None
            await old.close(4000, "session resumed elsewhere")
        self.resumes += 1
        session.conn, session.closed_at = conn, None
        conn.session = session
        last = data.get("seq") or 0
        for seq, frame, on_sent in session.buffer:
            if seq > last:
                conn.send(frame, on_sent)
        self._dispatch_to(session, "RESUMED", {"_trace": ["fake-discord"]})
        self.fd.changed()
        return True

    def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_id")
        for gid in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild = self.fd.world.guilds.get(int(gid or 0))
            if guild is None:
                continue
            query = (data.get("query") or "").lower()
            wanted = {int(u) for u in data.get("user_ids") or []}
            members = [
                m for m in guild.members.values()
                if (not wanted or m.user_id in wanted)
                and self.fd.world.users[m.user_id].username.lower().startswith(query)
            ]
            if data.get("limit"):
                members = members[: int(data["limit"])]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id), "chunk_index": 0, "chunk_count": 1,
                "members": [m.payload(self.fd.world) for m in members],
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)
