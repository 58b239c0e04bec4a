"""Permission checks: one decorator sets the default permissions and checks at run time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

T = TypeVar("T")


class NotModerator(app_commands.CheckFailure):
    """The member lacks Manage Server."""


def _has_manage_guild(interaction: discord.Interaction[Any]) -> bool:
    if interaction.guild is None or not interaction.permissions.manage_guild:
        raise NotModerator("You need the Manage Server permission to do that.")
    return True


def moderator_only(*, subcommand: bool = False) -> Callable[[T], T]:
    """Manage Server, checked at run time. Top-level commands also get it as their
    default permission (Discord applies default permissions to whole command groups, so
    subcommands rely on the run-time check alone)."""

    def decorator(func: T) -> T:
        checked = app_commands.check(_has_manage_guild)(func)
        if not subcommand:
            checked = app_commands.default_permissions(manage_guild=True)(checked)
        return checked

    return decorator


REQUIRED_CHANNEL_PERMISSIONS = ("send_messages", "attach_files", "embed_links")
PERMISSION_NAMES = {
    "send_messages": "Send Messages",
    "attach_files": "Attach Files",
    "embed_links": "Embed Links",
}


def missing_channel_permissions(permissions: discord.Permissions) -> list[str]:
    """What the bot lacks in a channel to post a video there."""
    return [PERMISSION_NAMES[p] for p in REQUIRED_CHANNEL_PERMISSIONS
            if not getattr(permissions, p)]
