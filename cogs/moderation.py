"""/settings, /blocklist add|remove|list, /block and /unblock (all Manage Server).

Settings are read from the database at every request, so changes apply at once.
"""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import MODELS, models_for, offered_models
from bot.jobs.intake import Refusal
from bot.moderation.blocklist import PATTERN_MAX_CHARS
from bot.moderation.policy import GuildPolicy
from bot.moderation.text import term_key
from cogs.checks import missing_channel_permissions, moderator_only
from cogs.moderation_render import blocklist_embed, settings_embed
from cogs.video import model_choices

Clearable = Literal["channels", "roles", "models", "audit channel", "everything"]
LONGEST = sorted({d for spec in MODELS for d in spec.durations})
DURATION_CHOICES = [
    *(app_commands.Choice(name=f"{d} seconds", value=d) for d in LONGEST),
    app_commands.Choice(name="no limit", value=0),
]


def _added(items: tuple[Any, ...], item: Any) -> tuple[Any, ...]:
    return items if item in items else (*items, item)


def _removed(items: tuple[Any, ...], item: Any, shown: str, what: str) -> tuple[Any, ...]:
    if item not in items:
        raise Refusal(f"{shown} is not on the allowed {what} list; nothing changed.")
    if len(items) == 1:
        raise Refusal(
            f"{shown} is the only allowed {what[:-1]}: removing it would allow every "
            f"{what[:-1]}. Use clear:{what} if that is what you want."
        )
    return tuple(i for i in items if i != item)


def _cleared(policy: GuildPolicy, clear: Clearable | None) -> GuildPolicy:
    if clear == "everything":
        return GuildPolicy()
    field = {"channels": "channels", "roles": "roles", "models": "models",
             "audit channel": "audit_channel_id"}.get(clear or "")
    if field is None:
        return policy
    return policy.model_copy(update={field: GuildPolicy.model_fields[field].default})


class Moderation(commands.Cog):
    blocklist = app_commands.Group(
        name="blocklist", description="Words and patterns refused in prompts (Manage Server)",
        guild_only=True, default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    # -- /settings -----------------------------------------------------------------------

    @app_commands.command(
        name="settings", description="Where, by whom, with which models and how often videos "
        "can be made (Manage Server)"
    )
    @app_commands.describe(
        allow_channel="Allow videos in this channel (while none is listed: every channel)",
        remove_channel="Take this channel off the allowed list",
        allow_role="Allow members with this role (while none is listed: everyone)",
        remove_role="Take this role off the allowed list",
        allow_model="Allow this model (while none is listed: every model)",
        remove_model="Take this model off the allowed list",
        max_duration="The longest video members may ask for",
        cooldown="Seconds a member must wait between requests (0: none)",
        max_queued="Most videos one member may have on the way at once (0: no limit)",
        audit_channel="Post one line per request and outcome in this channel",
        clear="Put a setting back to its default",
    )
    @app_commands.choices(max_duration=DURATION_CHOICES)
    @app_commands.guild_only()
    @moderator_only()
    async def settings(
        self,
        interaction: discord.Interaction[VideoBot],
        allow_channel: discord.TextChannel | None = None,
        remove_channel: discord.TextChannel | None = None,
        allow_role: discord.Role | None = None,
        remove_role: discord.Role | None = None,
        allow_model: str | None = None,
        remove_model: str | None = None,
        max_duration: int | None = None,
        cooldown: app_commands.Range[int, 0, 86_400] | None = None,
        max_queued: app_commands.Range[int, 0, 100] | None = None,
        audit_channel: discord.TextChannel | None = None,
        clear: Clearable | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        offered = offered_models(self.bot.settings.provider, self.bot.settings.model)
        known = {m.id for m in models_for(self.bot.settings.provider)}  # retired too
        for name, allowed in ((allow_model, {m.id for m in offered}), (remove_model, known)):
            if name is not None and name not in allowed:
                ids = ", ".join(f"`{m.id}`" for m in offered)
                raise Refusal(f"There is no model called `{name}` here; offered: {ids}.")

        def change(policy: GuildPolicy) -> GuildPolicy:
            policy = _cleared(policy, clear)
            channels, roles, models = policy.channels, policy.roles, policy.models
            if allow_channel is not None:
                channels = _added(channels, allow_channel.id)
            if remove_channel is not None:
                channels = _removed(channels, remove_channel.id, remove_channel.mention,
                                    "channels")
            if allow_role is not None:
                roles = _added(roles, allow_role.id)
            if remove_role is not None:
                roles = _removed(roles, remove_role.id, remove_role.mention, "roles")
            if allow_model is not None:
                models = _added(models, allow_model)
            if remove_model is not None:
                models = _removed(models, remove_model, f"`{remove_model}`", "models")
            update: dict[str, Any] = {"channels": channels, "roles": roles, "models": models}
            if max_duration is not None:
                update["max_duration"] = max_duration or None
            if cooldown is not None:
                update["cooldown_s"] = cooldown
            if max_queued is not None:
                update["max_queued"] = max_queued or None
            if audit_channel is not None:
                update["audit_channel_id"] = audit_channel.id
            return policy.model_copy(update=update)

        before, after = await self.bot.store.edit_policy(
            interaction.guild_id, change, interaction.user.id
        )
        notes = ["Settings updated; they apply from the next request." if after != before
                 else "These are this server's video settings."]
        notes += self._warnings(interaction, after, allow_channel, audit_channel)
        entries = await self.bot.store.block_entries(interaction.guild_id)
        blocked = await self.bot.store.blocked_members(interaction.guild_id)
        await interaction.followup.send(
            "\n".join(notes), embed=settings_embed(after, offered, entries, blocked),
            ephemeral=True,
        )

    @staticmethod
    def _warnings(
        interaction: discord.Interaction[VideoBot], policy: GuildPolicy,
        allowed: discord.TextChannel | None, audit: discord.TextChannel | None,
    ) -> list[str]:
        notes: list[str] = []
        guild = interaction.guild
        me = guild.me if guild is not None else None
        if me is None:
            return notes
        if allowed is not None:
            missing = missing_channel_permissions(allowed.permissions_for(me))
            if missing:
                notes.append(f"Note: I cannot post videos in {allowed.mention} yet; I need "
                             f"{', '.join(missing)} there.")
        if audit is not None and not audit.permissions_for(me).send_messages:
            notes.append(f"Note: I cannot send messages in {audit.mention}; audit lines "
                         "will not appear until I can.")
        if policy.models and interaction.client.settings.model not in policy.models:
            notes.append(f"Note: the default model `{interaction.client.settings.model}` is "
                         "not allowed, so members must pick an allowed one.")
        return notes

    @settings.autocomplete("allow_model")
    @settings.autocomplete("remove_model")
    async def _models(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot, current)

    # -- /blocklist ----------------------------------------------------------------------

    @blocklist.command(name="add", description="Refuse prompts containing a word, phrase or "
                       "pattern (Manage Server)")
    @app_commands.describe(
        term="A word or phrase (whole words, look-alike letters included) or a pattern",
        kind="word (default), or pattern: a regular expression run on the normalised, "
             "lower-case prompt",
    )
    @moderator_only(subcommand=True)
    async def blocklist_add(
        self,
        interaction: discord.Interaction[VideoBot],
        term: app_commands.Range[str, 1, PATTERN_MAX_CHARS],
        kind: Literal["word", "pattern"] = "word",
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry = await self.bot.rules.add_term(interaction.guild_id, kind, term,
                                              interaction.user.id)
        how = (f"matched as the whole word(s) `{entry.key}`" if kind == "word"
               else "matched on the normalised prompt")
        await interaction.followup.send(
            f"Added the {kind} ||`{entry.value}`|| ({how}). Prompts containing it are "
            "refused before any charge.", ephemeral=True,
        )

    @blocklist.command(name="remove", description="Take a word or pattern off the blocklist "
                       "(Manage Server)")
    @app_commands.describe(term="The word or pattern, as it was added")
    @moderator_only(subcommand=True)
    async def blocklist_remove(
        self, interaction: discord.Interaction[VideoBot],
        term: app_commands.Range[str, 1, PATTERN_MAX_CHARS],
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        keys = [k for k in (term.strip(), term_key(term)) if k]
        entry = await self.bot.store.remove_block_entry(interaction.guild_id, term.strip(), keys)
        if entry is None:
            raise Refusal("That is not on the blocklist; /blocklist list shows what is.")
        await interaction.followup.send(
            f"Removed the {entry.kind} ||`{entry.value}`|| from the blocklist.", ephemeral=True
        )

    @blocklist_remove.autocomplete("term")
    async def _entries(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []  # the blocklist is for moderators' eyes only
        entries = await self.bot.store.block_entries(interaction.guild_id)
        return [
            app_commands.Choice(name=f"{e.kind}: {e.value}"[:100], value=e.value[:100])
            for e in entries if current.lower() in e.value.lower()
        ][:25]

    @blocklist.command(name="list", description="Show the blocklist (Manage Server)")
    @moderator_only(subcommand=True)
    async def blocklist_list(self, interaction: discord.Interaction[VideoBot]) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        entries = await self.bot.store.block_entries(interaction.guild_id)
        await interaction.followup.send(embed=blocklist_embed(entries), ephemeral=True)

    # -- /block and /unblock ---------------------------------------------------------------

    @app_commands.command(name="block", description="Stop a member from making videos here "
                          "(Manage Server)")
    @app_commands.describe(member="Who to block", reason="A note for moderators")
    @app_commands.guild_only()
    @moderator_only()
    async def block(
        self, interaction: discord.Interaction[VideoBot], member: discord.Member,
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        new = await self.bot.store.block_member(
            interaction.guild_id, member.id, interaction.user.id, reason
        )
        text = (f"{member.mention} is blocked: their requests are refused at no cost."
                if new else f"{member.mention} was already blocked; the note is updated.")
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="unblock", description="Let a blocked member make videos again "
                          "(Manage Server)")
    @app_commands.describe(member="Who to unblock")
    @app_commands.guild_only()
    @moderator_only()
    async def unblock(
        self, interaction: discord.Interaction[VideoBot], member: discord.Member
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        removed = await self.bot.store.unblock_member(interaction.guild_id, member.id)
        text = (f"{member.mention} can make videos again." if removed
                else f"{member.mention} was not blocked.")
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Moderation(bot))
