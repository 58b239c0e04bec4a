"""INTERACTION_CREATE payloads as Discord sends them (what discord.py's Interaction reads).

``slash`` builds type 2 (APPLICATION_COMMAND): options are typed from the registered
command when it was synced (else from the Python value: str 3, int 4, bool 5, float 10),
subcommands nest (``subcommand="set"`` or ``"group sub"``), attachment options resolve to
files on the fake CDN. ``component`` builds type 3 (MESSAGE_COMPONENT) on a stored message.
Both register the interaction (id, unique token) with the fake before it is sent.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .models import InteractionRecord, StoredAttachment
from .world import Guild

if TYPE_CHECKING:
    from .server import FakeDiscord

PY_TYPES = ((bool, 5), (int, 4), (float, 10), (str, 3))


def new_token() -> str:
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(60)


def _option_defs(cmd: dict[str, Any] | None, path: list[str]) -> dict[str, dict[str, Any]]:
    defs = (cmd or {}).get("options") or []
    for name in path:
        found = next((o for o in defs if o.get("name") == name), None)
        defs = (found or {}).get("options") or []
    return {o["name"]: o for o in defs if "name" in o}


def _infer_type(value: Any) -> int:
    if isinstance(value, StoredAttachment):
        return 11
    for py_type, opt_type in PY_TYPES:
        if isinstance(value, py_type):
            return opt_type
    return 3


class Builders:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd

    # -- shared pieces --------------------------------------------------------------------
    def _context(self, guild_id: int | None, channel_id: int | None, user_id: int | None,
                 ) -> tuple[Guild, int, int]:
        world = self.fd.world
        if guild_id is None:
            if channel_id is not None and world.guild_of(channel_id) is not None:
                guild_id = world.guild_of(channel_id).id  # type: ignore[union-attr]
            elif len(world.guilds) == 1:
                guild_id = next(iter(world.guilds))
            else:
                raise ValueError("guild_id is required when the fake has several guilds")
        guild = world.guilds[guild_id]
        if channel_id is None:
            channel_id = next(c.id for c in guild.channels.values() if c.type == 0)
        if user_id is None:
            user_id = guild.owner_id
        if user_id not in guild.members:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}")
        return guild, channel_id, user_id

    def _base(self, itype: int, guild: Guild, channel_id: int, user_id: int, *,
              locale: str, attachment_size_limit: int | None) -> dict[str, Any]:
        fd, world = self.fd, self.fd.world
        member_perms = world.permissions_in(channel_id, user_id)
        channel = world.guilds[guild.id].channels[channel_id]
        return {
            "id": str(fd.ids.next()), "application_id": str(fd.application_id),
            "type": itype, "token": new_token(), "version": 1,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            "channel_id": str(channel_id),
            "channel": channel.payload() | {"permissions": str(member_perms)},
            "member": guild.members[user_id].payload(world) | {
                "permissions": str(member_perms)},
            "app_permissions": str(world.permissions_in(channel_id, fd.bot_user_id)),
            "locale": locale, "guild_locale": guild.preferred_locale,
            "entitlements": [], "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": attachment_size_limit or guild.upload_limit,
        }

    def _register(self, payload: dict[str, Any], *, name: str | None,
                  message_id: int | None) -> None:
        record = InteractionRecord(
            id=int(payload["id"]), token=payload["token"], type=payload["type"],
            payload=payload, guild_id=int(payload["guild_id"]),
            channel_id=int(payload["channel_id"]), user_id=int(payload["member"]["user"]["id"]),
            attachment_size_limit=payload["attachment_size_limit"], name=name,
            message_id=message_id,
        )
        self.fd.register_interaction(record)

    def _attachment(self, value: Any) -> StoredAttachment:
        fd = self.fd
        if isinstance(value, StoredAttachment):
            return value
        if isinstance(value, str):
            att = fd.cdn_file(value)
            if att is None:
                raise KeyError(f"{value!r} is not a file hosted by the fake (use fd.host_file)")
            return att
        if isinstance(value, tuple):
            data, filename, *rest = value
            return fd.cdn.store(fd.application_id, filename, data,
                                content_type=rest[0] if rest else None, ephemeral=True)
        raise TypeError(f"cannot use {value!r} as an attachment option")

    # -- application commands -------------------------------------------------------------
    def slash(self, name: str, options: dict[str, Any] | None = None, *,
              guild_id: int | None = None, channel_id: int | None = None,
              user_id: int | None = None, subcommand: str | None = None,
              attachments: dict[str, Any] | None = None,
              attachment_size_limit: int | None = None, locale: str = "en-US",
              strict: bool = True) -> dict[str, Any]:
        guild, channel_id, user_id = self._context(guild_id, channel_id, user_id)
        payload = self._base(2, guild, channel_id, user_id, locale=locale,
                             attachment_size_limit=attachment_size_limit)
        cmd = self.fd.commands.find(name, guild.id)
        path = subcommand.split() if subcommand else []
        defs = _option_defs(cmd, path)
        values = dict(options or {})
        values.update(attachments or {})
        if cmd is not None and strict:
            _check_invocation(cmd, defs, values, int(payload["member"]["permissions"]))
        resolved: dict[str, dict[str, Any]] = {}
        opts: list[dict[str, Any]] = []
        for opt_name, value in values.items():
            if value is None:
                continue
            otype = defs.get(opt_name, {}).get("type") or (
                11 if attachments and opt_name in attachments else _infer_type(value))
            opts.append({"name": opt_name, "type": otype,
                         "value": self._resolve(otype, value, guild, user_id, resolved)})
        for depth, sub in enumerate(reversed(path)):
            kind = 1 if depth == 0 else 2
            opts = [{"name": sub, "type": kind, "options": opts}]
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self.fd.ids.next()), "name": name, "type": 1,
            "options": opts,
        }
        if cmd and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        self._register(payload, name=" ".join([name, *path]), message_id=None)
        return payload

    def _resolve(self, otype: int, value: Any, guild: Guild, user_id: int,
                 resolved: dict[str, dict[str, Any]]) -> Any:
        world = self.fd.world
        if otype == 11:
            att = self._attachment(value)
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return str(att.id)
        if otype in (6, 9) and int(value) in world.users:
            uid = int(value)
            resolved.setdefault("users", {})[str(uid)] = world.users[uid].payload()
            if uid in guild.members:
                member = guild.members[uid].payload(world, with_user=False)
                resolved.setdefault("members", {})[str(uid)] = member
            return str(uid)
        if otype in (7, 9) and int(value) in guild.channels:
            channel = guild.channels[int(value)]
            resolved.setdefault("channels", {})[str(channel.id)] = {
                "id": str(channel.id), "name": channel.name, "type": channel.type,
                "permissions": str(world.permissions_in(channel.id, user_id)),
                "parent_id": None}
            return str(channel.id)
        if otype in (8, 9) and int(value) in guild.roles:
            resolved.setdefault("roles", {})[str(value)] = guild.roles[int(value)].payload()
            return str(value)
        if otype == 4:
            return int(value)
        if otype == 10:
            return float(value)
        return value

    def _on_message(self, itype: int, message_id: int, user_id: int | None, locale: str,
                    attachment_size_limit: int | None) -> tuple[Any, Guild, dict[str, Any]]:
        """An interaction of ``itype`` on a stored message, in that message's channel."""
        msg = self.fd.store.by_id.get(message_id)
        if msg is None:
            raise KeyError(f"unknown message {message_id}")
        guild, channel_id, user_id = self._context(msg.guild_id, msg.channel_id, user_id)
        return msg, guild, self._base(itype, guild, channel_id, user_id, locale=locale,
                                      attachment_size_limit=attachment_size_limit)

    def message_command(self, name: str, message_id: int, *, user_id: int | None = None,
                        attachment_size_limit: int | None = None,
                        locale: str = "en-US") -> dict[str, Any]:
        """A MESSAGE context-menu command (Apps -> NAME) on a stored message: data type 3
        with ``target_id`` and the message in ``resolved.messages``."""
        fd = self.fd
        msg, guild, payload = self._on_message(2, message_id, user_id, locale,
                                               attachment_size_limit)
        cmd = fd.commands.find(name, guild.id, ctype=3)
        payload["data"] = {
            "id": cmd["id"] if cmd else str(fd.ids.next()), "name": name, "type": 3,
            "target_id": str(msg.id),
            "resolved": {"messages": {str(msg.id): fd.store.payload(msg)}},
        }
        self._register(payload, name=name, message_id=None)
        return payload

    def modal_submit(self, custom_id: str, values: dict[str, str], *, guild_id: int,
                     channel_id: int, user_id: int, message_id: int | None = None,
                     locale: str = "en-US") -> dict[str, Any]:
        """A MODAL_SUBMIT interaction: each text input's value, one action row each, as
        Discord sends a submitted modal (``message`` when the modal came from a button)."""
        guild, channel_id, user_id = self._context(guild_id, channel_id, user_id)
        payload = self._base(5, guild, channel_id, user_id, locale=locale,
                             attachment_size_limit=None)
        payload["data"] = {"custom_id": custom_id, "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
            for key, value in values.items()]}
        if message_id is not None:
            payload["message"] = self.fd.store.payload(self.fd.store.by_id[message_id])
        self._register(payload, name=None, message_id=message_id)
        return payload

    # -- components -----------------------------------------------------------------------
    def component(self, custom_id: str, message_id: int, *, user_id: int | None = None,
                  component_type: int | None = None, values: list[str] | None = None,
                  attachment_size_limit: int | None = None, locale: str = "en-US",
                  ) -> dict[str, Any]:
        msg, _, payload = self._on_message(3, message_id, user_id, locale,
                                           attachment_size_limit)
        found = _find_component(msg.components, custom_id)
        ctype = component_type or (found or {}).get("type") or 2
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype}
        if values is not None or ctype in (3, 5, 6, 7, 8):
            data["values"] = list(values or [])
        payload["data"] = data
        payload["message"] = self.fd.store.payload(msg)
        self._register(payload, name=None, message_id=msg.id)
        return payload


def _check_invocation(cmd: dict[str, Any], defs: dict[str, dict[str, Any]],
                      values: dict[str, Any], member_perms: int) -> None:
    """What Discord's client guarantees before it sends a command (``strict=False`` skips)."""
    title = f"/{cmd['name']}"
    needed = cmd.get("default_member_permissions")
    if needed is not None and int(needed) & ~member_perms:
        raise PermissionError(f"{title} needs permissions {needed}: Discord would not offer it "
                              "to this member (strict=False sends it anyway, as when a server "
                              "admin overrides the command's permissions)")
    for opt_name, spec in defs.items():
        if spec.get("required") and values.get(opt_name) is None:
            raise ValueError(f"{title}: option {opt_name!r} is required")
    for opt_name, value in values.items():
        spec = defs.get(opt_name)
        if value is None:
            continue
        if spec is None:
            raise ValueError(f"{title} has no option {opt_name!r} (known: {sorted(defs)})")
        choices = [c["value"] for c in spec.get("choices") or []]
        if choices and value not in choices:
            raise ValueError(f"{title}: {opt_name}={value!r} is not one of {choices}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = spec.get("min_value"), spec.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{title}: {opt_name}={value!r} is outside [{low}, {high}]")
        if isinstance(value, str) and spec.get("type") == 3:
            low, high = spec.get("min_length", 0), spec.get("max_length", 6000)
            if not low <= len(value) <= high:
                raise ValueError(f"{title}: {opt_name} length must be in [{low}, {high}]")


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for comp in components:
        if comp.get("custom_id") == custom_id:
            return comp
        for key in ("components", "accessory"):
            inner = comp.get(key)
            if isinstance(inner, dict):
                inner = [inner]
            if isinstance(inner, list):
                hit = _find_component(inner, custom_id)
                if hit is not None:
                    return hit
    return None
