"""REST routes for the bot token: users, gateway, application, guilds, channels, messages.

Permission rules on channel routes (the bot's computed permissions in the channel):
no VIEW_CHANNEL -> 403 50001 Missing Access; posting without SEND_MESSAGES, or with files
without ATTACH_FILES -> 403 50013 Missing Permissions; embeds without EMBED_LINKS are
silently dropped (the message is created without them, ``Message.embeds_dropped`` is set),
which is what bots observe on Discord. A file over the guild's upload limit -> 413 40005.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .bodies import (
    ApiError,
    check_file_sizes,
    form_error,
    json_response,
    missing_access,
    missing_permissions,
    read_body,
    unknown,
    validate_message,
)
from .world import Channel, Perm

if TYPE_CHECKING:
    from .server import FakeDiscord


def snowflake(value: str, what: str, code: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise unknown(what, code) from None


def snowflake_param(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise form_error(name, "NUMBER_TYPE_COERCE",
                         f"Value \"{value}\" is not snowflake.") from None


class RestApi:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd

    def routes(self, prefix: str) -> list[web.RouteDef]:
        p = prefix
        return [
            web.get(f"{p}/users/@me", self.get_me),
            web.get(f"{p}/users/{{user_id}}", self.get_user),
            web.get(f"{p}/gateway", self.get_gateway),
            web.get(f"{p}/gateway/bot", self.get_gateway_bot),
            web.get(f"{p}/oauth2/applications/@me", self.get_application),
            web.get(f"{p}/applications/@me", self.get_application),
            web.get(f"{p}/guilds/{{guild_id}}", self.get_guild),
            web.get(f"{p}/guilds/{{guild_id}}/channels", self.get_guild_channels),
            web.get(f"{p}/guilds/{{guild_id}}/roles", self.get_roles),
            web.get(f"{p}/guilds/{{guild_id}}/members/{{user_id}}", self.get_member),
            web.get(f"{p}/channels/{{channel_id}}", self.get_channel),
            web.post(f"{p}/channels/{{channel_id}}/typing", self.typing),
            web.get(f"{p}/channels/{{channel_id}}/messages", self.list_messages),
            web.post(f"{p}/channels/{{channel_id}}/messages", self.post_message),
            web.get(f"{p}/channels/{{channel_id}}/messages/{{message_id}}", self.get_message),
            web.patch(f"{p}/channels/{{channel_id}}/messages/{{message_id}}", self.edit_message),
            web.delete(f"{p}/channels/{{channel_id}}/messages/{{message_id}}",
                       self.delete_message),
        ]

    # -- helpers --------------------------------------------------------------------------
    def _guild(self, request: web.Request) -> Any:
        gid = snowflake(request.match_info["guild_id"], "Guild", 10004)
        guild = self.fd.world.guilds.get(gid)
        if guild is None:
            raise unknown("Guild", 10004)
        if self.fd.bot_user_id not in guild.members:
            raise missing_access()
        return guild

    def _channel(self, request: web.Request) -> tuple[Channel, int]:
        cid = snowflake(request.match_info["channel_id"], "Channel", 10003)
        channel = self.fd.world.channel(cid)
        if channel is None:
            raise unknown("Channel", 10003)
        perms = self.fd.world.permissions_in(cid, self.fd.bot_user_id)
        if not perms & Perm.VIEW_CHANNEL:
            raise missing_access()
        return channel, perms

    def _message(self, request: web.Request, channel: Channel) -> Any:
        mid = snowflake(request.match_info["message_id"], "Message", 10008)
        msg = self.fd.store.get(mid)
        if msg is None or msg.channel_id != channel.id or msg.ephemeral:
            raise unknown("Message", 10008)
        return msg

    # -- users, gateway, application ------------------------------------------------------
    async def get_me(self, request: web.Request) -> web.Response:
        me = self.fd.world.bot.payload() | {"verified": True, "mfa_enabled": False,
                                            "email": None, "locale": "en-US"}
        return json_response(me)

    async def get_user(self, request: web.Request) -> web.Response:
        uid = snowflake(request.match_info["user_id"], "User", 10013)
        user = self.fd.world.users.get(uid)
        if user is None:
            raise unknown("User", 10013)
        return json_response(user.payload())

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fd.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({
            "url": self.fd.gateway_url, "shards": self.fd.recommended_shards,
            "session_start_limit": {"total": 1000, "remaining": 999,
                                    "reset_after": 14_400_000, "max_concurrency": 1},
        })

    async def get_application(self, request: web.Request) -> web.Response:
        fd = self.fd
        owner = fd.world.users[fd.owner_user_id].payload()
        return json_response({
            "id": str(fd.application_id), "name": fd.world.bot.username, "icon": None,
            "description": "", "summary": "", "type": None, "bot_public": True,
            "bot_require_code_grant": False, "verify_key": "0" * 64, "owner": owner,
            "team": None, "flags": fd.application_flags, "bot": fd.world.bot.payload(),
            "interactions_endpoint_url": None, "redirect_uris": [], "tags": [],
            "approximate_guild_count": len(fd.world.guilds), "rpc_origins": [],
            "install_params": {"scopes": ["bot", "applications.commands"],
                               "permissions": "0"},
            "integration_types_config": {"0": {}},
        })

    # -- guilds ---------------------------------------------------------------------------
    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = guild.payload()
        if request.query.get("with_counts", "false").lower() in ("true", "1"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([c.payload() for c in guild.channels.values()])

    async def get_roles(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([r.payload() for r in guild.roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        uid = snowflake(request.match_info["user_id"], "Member", 10007)
        member = guild.members.get(uid)
        if member is None:
            raise unknown("Member", 10007)
        return json_response(member.payload(self.fd.world))

    # -- channels -------------------------------------------------------------------------
    async def get_channel(self, request: web.Request) -> web.Response:
        channel, _ = self._channel(request)
        return json_response(channel.payload())

    async def typing(self, request: web.Request) -> web.Response:
        _, perms = self._channel(request)
        if not perms & Perm.SEND_MESSAGES:
            raise missing_permissions()
        return web.Response(status=204)

    async def list_messages(self, request: web.Request) -> web.Response:
        channel, perms = self._channel(request)
        if not perms & Perm.READ_MESSAGE_HISTORY:
            return json_response([])
        try:
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            raise form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise form_error("limit", "NUMBER_TYPE_MAX", "int value should be <= 100 and >= 1.")
        msgs = self.fd.store.in_channel(channel.id)
        q = {k: snowflake_param(k, v) for k, v in request.query.items()
             if k in ("before", "after", "around")}
        if "before" in q:
            msgs = [m for m in msgs if m.id < q["before"]]
        if "after" in q:
            msgs = [m for m in msgs if m.id > q["after"]][:limit]
        if "around" in q:
            around = q["around"]
            older = [m for m in msgs if m.id <= around][-(limit // 2 + limit % 2):]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        msgs = list(reversed(msgs))[:limit]  # newest first, like Discord
        return json_response([self.fd.store.payload(m) for m in msgs])

    async def get_message(self, request: web.Request) -> web.Response:
        channel, perms = self._channel(request)
        if not perms & Perm.READ_MESSAGE_HISTORY:
            raise missing_access()
        return json_response(self.fd.store.payload(self._message(request, channel)))

    async def post_message(self, request: web.Request) -> web.Response:
        fd = self.fd
        cid = snowflake(request.match_info["channel_id"], "Channel", 10003)
        failure = fd.take_post_failure()
        if failure is not None:
            raise failure.error(f"POST /channels/{cid}/messages")
        channel, perms = self._channel(request)
        payload, files = await read_body(request)
        if not perms & Perm.SEND_MESSAGES:
            raise missing_permissions()
        if files and not perms & Perm.ATTACH_FILES:
            raise missing_permissions()
        validate_message(payload, files, creating=True)
        ref = payload.get("message_reference")
        if ref and ref.get("fail_if_not_exists", True):
            target = fd.store.get(int(ref.get("message_id") or 0))
            if target is None or target.channel_id != channel.id:
                raise form_error("message_reference", "REPLIES_UNKNOWN_MESSAGE",
                                 "Unknown message")
        check_file_sizes(files, fd.world.guilds[channel.guild_id].upload_limit)
        msg = fd.store.create(channel.id, payload, files, author_id=fd.bot_user_id,
                              drop_embeds=not perms & Perm.EMBED_LINKS)
        return json_response(fd.store.payload(msg))

    async def edit_message(self, request: web.Request) -> web.Response:
        fd = self.fd
        channel, perms = self._channel(request)
        msg = self._message(request, channel)
        headers = fd.check_edit_rate(f"PATCH /channels/{channel.id}/messages")
        payload, files = await read_body(request)
        if msg.author_id != fd.bot_user_id:
            if set(payload) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            if not perms & Perm.MANAGE_MESSAGES:
                raise missing_permissions()
        if files and not perms & Perm.ATTACH_FILES:
            raise missing_permissions()
        validate_message(payload, files, creating=False)
        check_file_sizes(files, fd.world.guilds[channel.guild_id].upload_limit)
        fd.store.edit(msg, payload, files, drop_embeds=not perms & Perm.EMBED_LINKS)
        return json_response(fd.store.payload(msg), headers=headers)

    async def delete_message(self, request: web.Request) -> web.Response:
        channel, perms = self._channel(request)
        msg = self._message(request, channel)
        if msg.author_id != self.fd.bot_user_id and not perms & Perm.MANAGE_MESSAGES:
            raise missing_permissions()
        self.fd.store.delete(msg)
        return web.Response(status=204)
