"""``FakeDiscord``: Discord's REST API, gateway and CDN on 127.0.0.1 for the real discord.py.

    async with FakeDiscord() as fd:
        gid = fd.add_guild("Test")
        with point_discord_py(fd):          # Route.BASE + DiscordWebSocket.DEFAULT_GATEWAY
            await bot.start(fd.token)

A ``python -m bot`` subprocess is pointed at it with DISCORD_TOKEN=fd.token,
DISCORD_API_BASE_URL=fd.api_base and DISCORD_GATEWAY_URL=fd.gateway_url.
Everything the fake stores or records is inspectable, and ``wait_for`` wakes on every change.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from .bodies import ApiError, not_found, unauthorized
from .builders import Builders
from .cdn import Cdn
from .commands import CommandsApi
from .gateway import (
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    Gateway,
)
from .limits import VIA, EditLimiter, InjectedFailure, ratelimit_headers
from .messages import MessageStore
from .models import (
    CallbackRecord,
    CommandSync,
    DownloadRecord,
    InteractionRecord,
    Message,
    RequestRecord,
    StoredAttachment,
)
from .rest import RestApi
from .webhooks import WebhookApi
from .world import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    Snowflakes,
    User,
    World,
    as_permissions,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
API_PREFIX = "/api/v{version:(9|10)}"
NO_AUTH = ("/interactions/", "/webhooks/")


class FakeDiscord:
    def __init__(self, *, token: str | None = None, bot_name: str = "VideoBot",
                 host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake only listens on loopback")
        self.host = host
        self.ids = Snowflakes()
        self.bot_user_id = self.ids.next()
        self.recommended_shards = 1  # GET /gateway/bot's "shards"
        self.application_id = self.bot_user_id  # as for every modern Discord application
        self.token = token or ".".join((
            base64.b64encode(str(self.bot_user_id).encode()).decode().rstrip("="),
            secrets.token_urlsafe(4), secrets.token_urlsafe(27)))
        self.world = World(self.ids, User(self.bot_user_id, bot_name, bot=True))
        self.owner_user_id = self.world.add_user(name="app-owner").id
        self.gateway = Gateway(self)
        self.cdn = Cdn(self.ids, lambda: self.origin, self.changed)
        self.store = MessageStore(self)
        self.commands = CommandsApi(self)
        self.builders = Builders(self)
        self.interactions: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self.command_syncs: list[CommandSync] = []
        self.requests: list[RequestRecord] = []
        self.latency_s = 0.0
        self.interaction_ack_deadline_s = 3.0
        self.interaction_token_ttl_s = 15 * 60.0
        self.edit_limiter: EditLimiter | None = None
        self._post_failures: deque[InjectedFailure] = deque()
        self.injected_failures: list[InjectedFailure] = []
        self.errors: list[Exception] = []  # the fake's own bugs (answered as 400)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_routes(self.cdn.routes())
        for api in (RestApi(self), self.commands, WebhookApi(self)):
            app.router.add_routes(api.routes(API_PREFIX))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.origin}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def application_flags(self) -> int:
        allowed = self.gateway.allowed_privileged_intents
        flags = 1 << 23  # APPLICATION_COMMAND_BADGE
        flags |= (1 << 13) if allowed & INTENT_GUILD_PRESENCES else 0
        flags |= (1 << 15) if allowed & INTENT_GUILD_MEMBERS else 0
        flags |= (1 << 19) if allowed & INTENT_MESSAGE_CONTENT else 0
        return flags

    # -- change notification --------------------------------------------------------------
    def changed(self) -> None:
        """Wake every ``wait_for`` (an event swapped on each change: a lock-free Condition)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Return the first truthy value of ``predicate()``, re-checked after every change."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.25))

    # -- HTTP plumbing --------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                          ) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        record = RequestRecord(request.method, request.path, dict(request.query),
                               time.monotonic())
        self.requests.append(record)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        try:
            sub = request.path.split("/", 3)[-1]
            public = any(sub.startswith(p.strip("/")) for p in NO_AUTH) or sub == "gateway"
            record.authorized = request.headers.get("Authorization") == f"Bot {self.token}"
            if not public and not record.authorized:
                raise unauthorized()
            response = await handler(request)
        except ApiError as err:
            response = err.response()
        except web.HTTPMethodNotAllowed:
            response = ApiError(405, 0, "405: Method Not Allowed").response()
        except web.HTTPNotFound:
            response = not_found().response()
        except Exception as exc:  # a bug in the fake: fail loudly, never a retried 500
            log.exception("fake Discord failed on %s %s", request.method, request.path)
            self.errors.append(exc)
            response = ApiError(400, 0, f"fake-discord internal error: {exc!r}").response()
        response.headers.setdefault("Via", VIA)
        if response.status < 400 and "X-RateLimit-Bucket" not in response.headers:
            info = request.match_info.route.resource
            key = f"{request.method} {info.canonical if info else request.path}"
            response.headers.update(ratelimit_headers(key))
        record.status = response.status
        self.changed()
        return response

    def check_edit_rate(self, bucket: str) -> dict[str, str]:
        return self.edit_limiter.check(bucket) if self.edit_limiter else {}

    def take_post_failure(self) -> InjectedFailure | None:
        if not self._post_failures:
            return None
        failure = self._post_failures.popleft()
        self.injected_failures.append(failure)
        return failure

    # -- misbehaviour switches ------------------------------------------------------------
    def fail_next_message_posts(self, n: int = 1, status: int = 429, retry_after: float = 0.2,
                                *, is_global: bool = False) -> None:
        """The next ``n`` POST /channels/{id}/messages answer ``status`` without posting."""
        for _ in range(n):
            self._post_failures.append(InjectedFailure(status, retry_after, is_global))

    def rate_limit_edits(self, limit: int | None = 5, window_s: float = 5.0) -> None:
        """At most ``limit`` message edits per ``window_s`` per channel / interaction token
        (then 429 with real X-RateLimit headers); ``None`` turns the limiter off."""
        self.edit_limiter = EditLimiter(limit, window_s) if limit else None

    # -- world ----------------------------------------------------------------------------
    def add_guild(self, name: str = "Test Guild", *, guild_id: int | None = None,
                  owner_id: int | None = None, everyone_permissions: Any = None,
                  bot_permissions: Any = None, premium_tier: int = 0,
                  upload_limit: int | None = None, channel_name: str = "general") -> int:
        """A guild with @everyone, the bot (with a managed role), its owner and one text
        channel. Returns the guild id. Sent as GUILD_CREATE to connected sessions."""
        guild = self.world.add_guild(
            name, guild_id=guild_id, owner_id=owner_id,
            everyone_permissions=DEFAULT_EVERYONE_PERMISSIONS if everyone_permissions is None
            else as_permissions(everyone_permissions),
            bot_permissions=DEFAULT_BOT_PERMISSIONS if bot_permissions is None
            else as_permissions(bot_permissions),
            premium_tier=premium_tier, upload_limit=upload_limit)
        self.world.add_channel(guild.id, channel_name)
        self.gateway.dispatch_guild_create(guild)
        self.changed()
        return guild.id

    def add_role(self, guild_id: int, name: str, permissions: Any = 0) -> int:
        role = self.world.add_role(guild_id, name, as_permissions(permissions))
        self._guild_event("GUILD_ROLE_CREATE", guild_id, {"role": role.payload()})
        return role.id

    def set_role_permissions(self, guild_id: int, role_id: int, permissions: Any) -> None:
        role = self.world.guilds[guild_id].roles[role_id]
        role.permissions = as_permissions(permissions)
        self._guild_event("GUILD_ROLE_UPDATE", guild_id, {"role": role.payload()})

    def add_member(self, guild_id: int, user_id: int | None = None, *, name: str | None = None,
                   permissions: Any = None, roles: list[int] | None = None,
                   bot: bool = False) -> int:
        """A member; ``permissions`` gives them a personal role with those permissions.
        Returns the user id."""
        role_ids = list(roles or [])
        if permissions is not None:
            role_ids.append(self.add_role(guild_id, f"{name or 'member'}-perms", permissions))
        member = self.world.add_member(guild_id, user_id, name=name, roles=role_ids, bot=bot)
        data = member.payload(self.world) | {"guild_id": str(guild_id)}
        self.gateway.dispatch("GUILD_MEMBER_ADD", data, intent=INTENT_GUILD_MEMBERS)
        self.changed()
        return member.user_id

    def add_text_channel(self, guild_id: int, name: str = "videos", *,
                         topic: str | None = None) -> int:
        channel = self.world.add_channel(guild_id, name, topic=topic)
        self.gateway.dispatch("CHANNEL_CREATE", channel.payload(), intent=INTENT_GUILDS)
        self.changed()
        return channel.id

    def set_channel_overwrite(self, channel_id: int, target_id: int, *, allow: Any = 0,
                              deny: Any = 0, target_type: int | None = None) -> None:
        """Overwrite for a role (type 0) or member (type 1); allow=deny=0 removes it."""
        channel = self.world.set_overwrite(channel_id, target_id, allow=as_permissions(allow),
                                           deny=as_permissions(deny), target_type=target_type)
        self.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), intent=INTENT_GUILDS)
        self.changed()

    def set_bot_channel_permissions(self, channel_id: int, *, allow: Any = 0,
                                    deny: Any = 0) -> None:
        """E.g. ``deny=Perm.SEND_MESSAGES`` or ``deny=["attach_files", "embed_links"]``."""
        self.set_channel_overwrite(channel_id, self.bot_user_id, allow=allow, deny=deny,
                                   target_type=1)

    def permissions_for(self, channel_id: int, user_id: int) -> int:
        return self.world.permissions_in(channel_id, user_id)

    def text_channels(self, guild_id: int) -> list[int]:
        return [c.id for c in self.world.guilds[guild_id].channels.values() if c.type == 0]

    def _guild_event(self, event: str, guild_id: int, data: dict[str, Any]) -> None:
        self.gateway.dispatch(event, data | {"guild_id": str(guild_id)}, intent=INTENT_GUILDS)
        self.changed()

    # -- interactions ---------------------------------------------------------------------
    def slash(self, name: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """See ``Builders.slash``: guild_id, channel_id, user_id, subcommand, attachments,
        attachment_size_limit, locale."""
        return self.builders.slash(name, options, **kw)

    def button(self, custom_id: str, message_id: int, **kw: Any) -> dict[str, Any]:
        """A MESSAGE_COMPONENT interaction on a stored message (user_id, component_type,
        values for selects, attachment_size_limit, locale)."""
        return self.builders.component(custom_id, message_id, **kw)

    def register_interaction(self, record: InteractionRecord) -> None:
        self.interactions[record.id] = record
        self._by_token[record.token] = record

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return self._by_token.get(token)

    async def send_interaction(self, payload: dict[str, Any], *,
                               timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Dispatch INTERACTION_CREATE; returns once it was written to a bot's websocket
        (that moment starts the 3 s ack clock). Waits up to ``timeout`` for a connected
        session; a session that is reconnecting gets it when it RESUMEs."""
        record = self.interactions.get(int(payload["id"]))
        if record is None:
            raise KeyError("build the payload with fd.slash() / fd.button()")
        guild_id = int(payload["guild_id"]) if payload.get("guild_id") else None
        await self.wait_for(lambda: [
            s for s in self.gateway.live_sessions() if s.serves(guild_id)], timeout)
        sent = asyncio.get_running_loop().create_future()

        def on_sent() -> None:
            if record.dispatched_at is None:
                record.dispatched_at = time.monotonic()
                self.changed()
            if not sent.done():
                sent.set_result(None)

        self.gateway.dispatch("INTERACTION_CREATE", payload, on_sent=on_sent)
        try:
            await asyncio.wait_for(sent, timeout)
        except TimeoutError:
            raise TimeoutError("no bot connection took the interaction") from None

    def interaction(self, interaction_id: int | str) -> InteractionRecord:
        return self.interactions[int(interaction_id)]

    def interaction_responses(self, interaction_id: int | str) -> list[CallbackRecord]:
        """Every callback attempt (accepted ones have status 200/204)."""
        return list(self.interaction(interaction_id).callbacks)

    def ack_latency(self, interaction_id: int | str) -> float | None:
        callbacks = self.interaction(interaction_id).callbacks
        return callbacks[0].elapsed_s if callbacks else None

    # -- messages and files ---------------------------------------------------------------
    def messages(self, channel_id: int, *, include_ephemeral: bool = False,
                 include_deleted: bool = False, source: str | None = None) -> list[Message]:
        """Oldest first. ``source``: "channel", "interaction" or "followup"."""
        msgs = self.store.in_channel(channel_id, include_deleted=include_deleted,
                                     include_ephemeral=include_ephemeral)
        return [m for m in msgs if source is None or m.source == source]

    def message(self, message_id: int) -> Message:
        return self.store.by_id[int(message_id)]

    def host_file(self, data: bytes, filename: str, content_type: str | None = None, *,
                  expires_in_s: float | None = None) -> str:
        """Put a file on the fake CDN (e.g. a member's upload); returns its signed URL."""
        att = self.cdn.store(0, filename, data, content_type=content_type,
                             expires_in_s=expires_in_s)
        self.changed()
        return att.url

    def cdn_file(self, url_or_id: str | int) -> StoredAttachment | None:
        if isinstance(url_or_id, int):
            return self.cdn.files.get(url_or_id)
        return next((a for a in self.cdn.files.values()
                     if url_or_id in (a.url, a.proxy_url)), None)

    def expire_attachment(self, url_or_id: str | int) -> None:
        att = self.cdn_file(url_or_id)
        if att is not None:
            att.expires_at = 0.0

    @property
    def downloads(self) -> list[DownloadRecord]:
        return self.cdn.downloads

    # -- syncs and requests ---------------------------------------------------------------
    @property
    def global_syncs(self) -> list[CommandSync]:
        return [s for s in self.command_syncs if s.is_global]

    def guild_syncs(self, guild_id: int | None = None) -> list[CommandSync]:
        return [s for s in self.command_syncs
                if not s.is_global and (guild_id is None or s.guild_id == guild_id)]

    def registered_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        return list(self.commands.registered(guild_id).values())

    def requests_to(self, method: str, path_contains: str = "") -> list[RequestRecord]:
        return [r for r in self.requests
                if r.method == method.upper() and path_contains in r.path]

    # -- gateway controls -----------------------------------------------------------------
    async def wait_until_connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(self.gateway.live_sessions, timeout)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and RESUMEs."""
        await self.gateway.send_op(7)

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway connection (sessions stay resumable)."""
        await self.gateway.drop_connections(code)

    def invalidate_sessions(self) -> None:
        """Forget sessions: the next RESUME gets INVALID_SESSION and the bot re-IDENTIFYs."""
        self.gateway.invalidate_sessions()
