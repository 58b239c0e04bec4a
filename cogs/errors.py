"""The one error handler of commands, buttons and modals: expected errors become short
ephemeral messages; the rest are logged with context and answered politely.

Slash commands reach it through the command tree; every button under a video through
``ResultActions.on_error`` (set when this cog loads); a modal's ``on_error`` should call
``handle_error`` too."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs.intake import Refusal
from bot.store import DatabaseUnavailable, QuotaExceeded
from cogs.checks import NotModerator
from cogs.render import quota_refusal

log = logging.getLogger(__name__)

SORRY = "Something went wrong on the bot's side. Nothing was charged; please try again."
DATABASE_AWAY = ("The bot's database is unavailable for a moment; nothing was charged. "
                 "Please try again shortly.")
DATABASE_FULL = ("The bot's database has run out of disk space; nothing was charged. "
                 "Please tell a server admin.")


def explain(error: BaseException) -> str | None:
    """A member-readable sentence for an expected error, or None."""
    if isinstance(error, Refusal):
        return error.user_message
    if isinstance(error, QuotaExceeded):
        return quota_refusal(error)
    if isinstance(error, DatabaseUnavailable):
        log.warning("a command could not reach the database: %s", error.reason)
        return DATABASE_FULL if error.full else DATABASE_AWAY
    if isinstance(error, NotModerator):
        return str(error)
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in servers only."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.TransformerError | app_commands.CheckFailure):
        return str(error) or "You cannot use this command here."
    return None


async def reply(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer ephemerally, or edit the deferred response if the command already deferred."""
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text, embed=None, view=None)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the member about an error (interaction %s)", interaction.id)


async def handle_error(
    interaction: discord.Interaction[Any], error: BaseException, where: str
) -> None:
    """The one answer to any failure of a command, button or modal: an expected error
    becomes its short message; anything else is logged with context (``where`` names
    what failed) and the member gets a short apology, never a traceback."""
    text = explain(error)
    if text is None:
        log.error(
            "%s failed (guild %s, channel %s, user %s)",
            where, interaction.guild_id, interaction.channel_id, interaction.user.id,
            exc_info=error,
        )
        text = SORRY
    await reply(interaction, text)


class Errors(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        bot.tree.error(self.on_app_command_error)

    async def cog_load(self) -> None:
        actions = getattr(self.bot, "result_actions", None)
        if actions is not None:
            actions.on_error = handle_error

    async def cog_unload(self) -> None:
        actions = getattr(self.bot, "result_actions", None)
        if actions is not None and actions.on_error is handle_error:
            actions.on_error = None

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        command = interaction.command.qualified_name if interaction.command else "?"
        await handle_error(interaction, original, f"command /{command}")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Errors(bot))
