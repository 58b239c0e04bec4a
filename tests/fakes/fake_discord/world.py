"""The fake's world: users, guilds, roles, channels, members and Discord's permission maths.

Payload shapes follow Discord's API reference (the fields discord.py 2.7 reads in guild.py,
channel.py, role.py, member.py and user.py). Permissions are computed the way Discord documents
it: @everyone, then the member's roles, ADMINISTRATOR short-circuit, then channel overwrites
(@everyone, roles, member), then the implicit denials (no VIEW_CHANNEL -> nothing; no
SEND_MESSAGES -> no TTS, @everyone mentions, embeds or attachments).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024


class Snowflakes:
    """Unique, time-ordered Discord snowflakes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22 | (1 << 17)
            value = max(value, self._last + 1)
            self._last = value
            return value


def iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).isoformat()


class Perm:
    """Permission bits (Discord's documented values) and a helper to combine them by name."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 51) - 1

    @classmethod
    def of(cls, *names: str) -> int:
        value = 0
        for name in names:
            value |= getattr(cls, name.upper())
        return value


DEFAULT_EVERYONE_PERMISSIONS = Perm.of(
    "create_instant_invite", "add_reactions", "view_channel", "send_messages", "embed_links",
    "attach_files", "read_message_history", "use_external_emojis", "connect", "speak",
    "change_nickname", "use_application_commands", "send_messages_in_threads",
)
DEFAULT_BOT_PERMISSIONS = Perm.of(
    "view_channel", "send_messages", "embed_links", "attach_files", "read_message_history",
    "add_reactions", "use_application_commands", "send_messages_in_threads",
)
PREMIUM_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}


def as_permissions(value: Any) -> int:
    """An int, anything with ``.value`` (discord.Permissions) or an iterable of names."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if hasattr(value, "value"):
        return int(value.value)
    if isinstance(value, str):
        return Perm.of(value)
    return Perm.of(*value)


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id), "username": self.username, "discriminator": "0",
            "global_name": self.global_name, "avatar": self.avatar, "public_flags": 0,
            "flags": 0, "banner": None, "accent_color": None, "avatar_decoration_data": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    tags: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id), "name": self.name, "permissions": str(self.permissions),
            "position": self.position, "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None,
                       "tertiary_color": None},
            "hoist": self.hoist, "managed": self.managed, "mentionable": self.mentionable,
            "icon": None, "unicode_emoji": None, "flags": 0, "description": None,
        }
        if self.tags is not None:
            data["tags"] = self.tags
        return data


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow),
                "deny": str(self.deny)}


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    type: int = 0  # GUILD_TEXT
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    parent_id: int | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    last_message_id: int | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "type": self.type, "guild_id": str(self.guild_id),
            "name": self.name, "position": self.position, "topic": self.topic, "nsfw": self.nsfw,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "rate_limit_per_user": 0, "flags": 0,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
        }


@dataclass
class Member:
    user_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso)

    def payload(self, world: World, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles], "nick": self.nick, "avatar": None,
            "banner": None, "joined_at": self.joined_at, "premium_since": None, "deaf": False,
            "mute": False, "flags": 0, "pending": False, "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = world.users[self.user_id].payload()
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    upload_limit: int = 10 * MIB
    preferred_locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    joined_at: str = field(default_factory=iso)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": str(self.owner_id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "roles": [r.payload() for r in self.roles.values()],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
            "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
            "rules_channel_id": None, "max_members": 500000, "vanity_url_code": None,
            "description": None, "banner": None, "premium_tier": self.premium_tier,
            "premium_subscription_count": 0, "preferred_locale": self.preferred_locale,
            "public_updates_channel_id": None, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "safety_alerts_channel_id": None,
            "incidents_data": None,
        }


class World:
    """Users and guilds, with the bot user living in every guild it was added to."""

    def __init__(self, ids: Snowflakes, bot_user: User) -> None:
        self.ids = ids
        self.bot = bot_user
        self.users: dict[int, User] = {bot_user.id: bot_user}
        self.guilds: dict[int, Guild] = {}
        self._names = itertools.count(1)

    # -- lookups --------------------------------------------------------------------------
    def channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        return None

    def guild_of(self, channel_id: int) -> Guild | None:
        channel = self.channel(channel_id)
        return self.guilds.get(channel.guild_id) if channel else None

    # -- building -------------------------------------------------------------------------
    def add_user(self, user_id: int | None = None, name: str | None = None, *,
                 bot: bool = False) -> User:
        uid = user_id or self.ids.next()
        if uid not in self.users:
            self.users[uid] = User(uid, name or f"user{next(self._names)}", name, bot=bot)
        return self.users[uid]

    def add_guild(self, name: str, *, guild_id: int | None, owner_id: int | None,
                  everyone_permissions: int, bot_permissions: int, premium_tier: int,
                  upload_limit: int | None) -> Guild:
        gid = guild_id or self.ids.next()
        owner = self.add_user(owner_id, "owner")
        limit = upload_limit or PREMIUM_UPLOAD_LIMITS.get(premium_tier, 10 * MIB)
        guild = Guild(gid, name, owner.id, premium_tier=premium_tier, upload_limit=limit)
        guild.roles[gid] = Role(gid, "@everyone", everyone_permissions)
        self.guilds[gid] = guild
        guild.members[owner.id] = Member(owner.id)
        bot_role = self.add_role(gid, self.bot.username, bot_permissions, managed=True,
                                 tags={"bot_id": str(self.bot.id)})
        guild.members[self.bot.id] = Member(self.bot.id, [bot_role.id])
        return guild

    def add_role(self, guild_id: int, name: str, permissions: int, *, managed: bool = False,
                 tags: dict[str, Any] | None = None) -> Role:
        guild = self.guilds[guild_id]
        role = Role(self.ids.next(), name, permissions, position=len(guild.roles),
                    managed=managed, tags=tags)
        guild.roles[role.id] = role
        return role

    def add_member(self, guild_id: int, user_id: int | None, *, name: str | None,
                   roles: list[int], bot: bool = False) -> Member:
        guild = self.guilds[guild_id]
        user = self.add_user(user_id, name, bot=bot)
        member = Member(user.id, list(roles))
        guild.members[user.id] = member
        return member

    def add_channel(self, guild_id: int, name: str, *, channel_type: int = 0,
                    topic: str | None = None) -> Channel:
        guild = self.guilds[guild_id]
        channel = Channel(self.ids.next(), guild_id, name, channel_type,
                          position=len(guild.channels), topic=topic)
        guild.channels[channel.id] = channel
        return channel

    def set_overwrite(self, channel_id: int, target_id: int, *, allow: int, deny: int,
                      target_type: int | None = None) -> Channel:
        channel = self.channel(channel_id)
        if channel is None:
            raise KeyError(f"unknown channel {channel_id}")
        guild = self.guilds[channel.guild_id]
        if target_type is None:
            target_type = 0 if target_id in guild.roles else 1
        if allow == 0 and deny == 0:
            channel.overwrites.pop(target_id, None)
        else:
            channel.overwrites[target_id] = Overwrite(target_id, target_type, allow, deny)
        return channel

    # -- permissions ----------------------------------------------------------------------
    def base_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return Perm.ALL
        member = guild.members.get(user_id)
        if member is None:
            return 0
        value = guild.everyone.permissions
        for role_id in member.roles:
            role = guild.roles.get(role_id)
            if role is not None:
                value |= role.permissions
        return Perm.ALL if value & Perm.ADMINISTRATOR else value

    def permissions_in(self, channel_id: int, user_id: int) -> int:
        channel = self.channel(channel_id)
        if channel is None:
            return 0
        guild = self.guilds[channel.guild_id]
        value = self.base_permissions(guild, user_id)
        if value == Perm.ALL:
            return value
        ows = channel.overwrites
        if guild.id in ows:
            value = (value & ~ows[guild.id].deny) | ows[guild.id].allow
        member = guild.members[user_id]
        allow = deny = 0
        for role_id in member.roles:
            ow = ows.get(role_id)
            if ow is not None and ow.type == 0:
                allow, deny = allow | ow.allow, deny | ow.deny
        value = (value & ~deny) | allow
        ow = ows.get(user_id)
        if ow is not None and ow.type == 1:
            value = (value & ~ow.deny) | ow.allow
        if not value & Perm.VIEW_CHANNEL:
            return 0
        if not value & Perm.SEND_MESSAGES:
            value &= ~(Perm.SEND_TTS_MESSAGES | Perm.MENTION_EVERYONE | Perm.EMBED_LINKS
                       | Perm.ATTACH_FILES)
        return value

    # -- payloads -------------------------------------------------------------------------
    def guild_create_payload(self, guild: Guild, *, all_members: bool) -> dict[str, Any]:
        members = guild.members.values() if all_members else [guild.members[self.bot.id]]
        data = guild.payload()
        data.update({
            "joined_at": guild.joined_at, "large": len(guild.members) > 250,
            "unavailable": False, "member_count": len(guild.members), "voice_states": [],
            "members": [m.payload(self) for m in members],
            "channels": [c.payload() for c in guild.channels.values()],
            "threads": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
        })
        return data
