"""Application command routes: global and per-guild lists, bulk overwrite (PUT), upsert.

A bulk overwrite keeps the id of a command that keeps its name and type (as Discord does) and
bumps its ``version`` when the definition changed. Every PUT is recorded as a ``CommandSync``.
Definitions are validated with Discord's rules (names, descriptions, option counts and order);
a bad definition gets 400 50035, which discord.py turns into ``CommandSyncFailure``.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .bodies import ApiError, form_error, json_response, missing_access, read_body, unknown
from .models import CommandSync

if TYPE_CHECKING:
    from .server import FakeDiscord

NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
SERVER_FIELDS = ("id", "application_id", "version", "guild_id")


def _check_name(path: str, name: Any, *, chat_input: bool) -> None:
    if not isinstance(name, str) or not (1 <= len(name) <= 32):
        raise form_error(f"{path}.name", "BASE_TYPE_BAD_LENGTH",
                         "Must be between 1 and 32 in length.")
    if chat_input and (not NAME_RE.match(name) or name != name.lower()):
        raise form_error(f"{path}.name", "APPLICATION_COMMAND_INVALID_NAME",
                         "Command name is invalid")


def _check_description(path: str, desc: Any) -> None:
    if not isinstance(desc, str) or not (1 <= len(desc) <= 100):
        raise form_error(f"{path}.description", "BASE_TYPE_BAD_LENGTH",
                         "Must be between 1 and 100 in length.")


def _check_options(path: str, options: list[dict[str, Any]], depth: int) -> None:
    if len(options) > 25:
        raise form_error(f"{path}.options", "BASE_TYPE_MAX_LENGTH",
                         "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        p = f"{path}.options.{i}"
        _check_name(p, opt.get("name"), chat_input=True)
        _check_description(p, opt.get("description"))
        if opt["name"] in names:
            raise form_error(f"{p}.name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                             "Option names must be unique")
        names.add(opt["name"])
        otype = opt.get("type")
        if otype in (1, 2):
            if depth >= (2 if otype == 2 else 3):
                raise form_error(f"{p}.type", "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                                 "Sub-command nesting is too deep")
            _check_options(p, opt.get("options") or [], depth + (2 if otype == 2 else 1))
            continue
        if not isinstance(otype, int) or not 3 <= otype <= 11:
            raise form_error(f"{p}.type", "BASE_TYPE_CHOICES", "Value must be one of 1-11.")
        if opt.get("required"):
            if seen_optional:
                raise form_error(f"{path}.options", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                                 "Required options must be placed before non-required options")
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            raise form_error(f"{p}.choices", "BASE_TYPE_MAX_LENGTH",
                             "Must be 25 or fewer in length.")


def validate_command(path: str, cmd: dict[str, Any]) -> None:
    ctype = cmd.get("type", 1)
    _check_name(path, cmd.get("name"), chat_input=ctype == 1)
    if ctype == 1:
        _check_description(path, cmd.get("description"))
        _check_options(path, cmd.get("options") or [], 1)
    elif cmd.get("description"):
        raise form_error(f"{path}.description", "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                         "Context menu commands cannot have description")


class CommandsApi:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.global_commands: dict[int, dict[str, Any]] = {}
        self.guild_commands: dict[int, dict[int, dict[str, Any]]] = {}

    def routes(self, prefix: str) -> list[web.RouteDef]:
        g = f"{prefix}/applications/{{app_id}}/commands"
        s = f"{prefix}/applications/{{app_id}}/guilds/{{guild_id}}/commands"
        return [
            web.get(g, self.list), web.put(g, self.bulk), web.post(g, self.upsert),
            web.get(f"{g}/{{command_id}}", self.get), web.patch(f"{g}/{{command_id}}", self.patch),
            web.delete(f"{g}/{{command_id}}", self.delete),
            web.get(s, self.list), web.put(s, self.bulk), web.post(s, self.upsert),
            web.get(f"{s}/permissions", self.permissions),
            web.get(f"{s}/{{command_id}}", self.get), web.patch(f"{s}/{{command_id}}", self.patch),
            web.delete(f"{s}/{{command_id}}", self.delete),
        ]

    def registered(self, guild_id: int | None) -> dict[int, dict[str, Any]]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(guild_id, {})

    def find(self, name: str, guild_id: int | None, ctype: int = 1) -> dict[str, Any] | None:
        """The command an interaction would name: the guild's own first, then global."""
        scopes = ([self.guild_commands.get(guild_id, {})] if guild_id else []) + [
            self.global_commands]
        for scope in scopes:
            for cmd in scope.values():
                if cmd["name"] == name and cmd.get("type", 1) == ctype:
                    return cmd
        return None

    def _scope(self, request: web.Request) -> int | None:
        if request.match_info["app_id"] != str(self.fd.application_id):
            raise missing_access()
        gid_text = request.match_info.get("guild_id")
        if gid_text is None:
            return None
        try:
            gid = int(gid_text)
        except ValueError:
            raise unknown("Guild", 10004) from None
        guild = self.fd.world.guilds.get(gid)
        if guild is None or self.fd.bot_user_id not in guild.members:
            raise missing_access()
        return gid

    def _materialise(self, cmd: dict[str, Any], guild_id: int | None,
                     old: dict[str, Any] | None) -> dict[str, Any]:
        body = {k: v for k, v in cmd.items() if k not in SERVER_FIELDS}
        body.setdefault("type", 1)
        body.setdefault("description", "")
        body.setdefault("options", [])
        body.setdefault("default_member_permissions", None)
        body.setdefault("nsfw", False)
        body.setdefault("contexts", None)
        body.setdefault("integration_types", [0])
        body.setdefault("name_localizations", None)
        body.setdefault("description_localizations", None)
        same = old is not None and json.dumps(
            {k: v for k, v in old.items() if k not in SERVER_FIELDS}, sort_keys=True
        ) == json.dumps(body, sort_keys=True)
        body["id"] = old["id"] if old else str(self.fd.ids.next())
        body["application_id"] = str(self.fd.application_id)
        body["version"] = old["version"] if same and old else str(self.fd.ids.next())
        if guild_id is not None:
            body["guild_id"] = str(guild_id)
        if guild_id is None and "dm_permission" not in body:
            body["dm_permission"] = True
        return body

    async def list(self, request: web.Request) -> web.Response:
        return json_response(list(self.registered(self._scope(request)).values()))

    async def bulk(self, request: web.Request) -> web.Response:
        gid = self._scope(request)
        raw = await request.read()
        try:
            commands = json.loads(raw or b"[]")
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
        if not isinstance(commands, list):
            raise form_error("_root", "LIST_TYPE_CONVERT", "Must be an array.")
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(commands):
            validate_command(str(i), cmd)
            key = (cmd["name"], cmd.get("type", 1))
            if key in seen:
                raise form_error(str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME",
                                 f"Application command names must be unique ({cmd['name']})")
            seen.add(key)
        if sum(1 for c in commands if c.get("type", 1) == 1) > 100:
            raise ApiError(400, 30032, "Maximum number of application commands reached (100)")
        current = self.registered(gid)
        by_key = {(c["name"], c.get("type", 1)): c for c in current.values()}
        fresh = [self._materialise(c, gid, by_key.get((c["name"], c.get("type", 1))))
                 for c in commands]
        current.clear()
        current.update({int(c["id"]): c for c in fresh})
        self.fd.command_syncs.append(CommandSync(gid, commands, time.monotonic(), time.time()))
        self.fd.changed()
        return json_response(fresh)

    async def upsert(self, request: web.Request) -> web.Response:
        gid = self._scope(request)
        cmd, _ = await read_body(request)
        validate_command("_root", cmd)
        current = self.registered(gid)
        old = next((c for c in current.values() if c["name"] == cmd["name"]
                    and c.get("type", 1) == cmd.get("type", 1)), None)
        fresh = self._materialise(cmd, gid, old)
        current[int(fresh["id"])] = fresh
        self.fd.changed()
        return json_response(fresh, status=200 if old else 201)

    def _command(self, request: web.Request) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
        current = self.registered(self._scope(request))
        try:
            cmd = current[int(request.match_info["command_id"])]
        except (KeyError, ValueError):
            raise unknown("application command", 10063) from None
        return current, cmd

    async def get(self, request: web.Request) -> web.Response:
        return json_response(self._command(request)[1])

    async def patch(self, request: web.Request) -> web.Response:
        current, cmd = self._command(request)
        changes, _ = await read_body(request)
        merged = {**cmd, **changes}
        validate_command("_root", merged)
        fresh = self._materialise(merged, cmd.get("guild_id") and int(cmd["guild_id"]), cmd)
        current[int(fresh["id"])] = fresh
        self.fd.changed()
        return json_response(fresh)

    async def delete(self, request: web.Request) -> web.Response:
        current, cmd = self._command(request)
        del current[int(cmd["id"])]
        self.fd.changed()
        return web.Response(status=204)

    async def permissions(self, request: web.Request) -> web.Response:
        self._scope(request)
        return json_response([])
