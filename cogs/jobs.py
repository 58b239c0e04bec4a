"""/jobs, /cancel and /forget-me: members see and stop their own jobs and can have their
prompts deleted; moderators (Manage Server) see and stop everyone's."""

from __future__ import annotations

import re
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.jobs.intake import Refusal
from bot.jobs.result import CANCEL_ASKED
from bot.moderation.privacy import forget_member
from bot.store import Job, JobState
from cogs.checks import NotModerator
from cogs.errors import reply
from cogs.moderation_render import STATE_WORDS, jobs_embed

JOB_ID = re.compile(r"(?:job\s+)?`?([0-9a-f]{4,32})`?")
FORGET_TTL_S = 15 * 60
NOT_SENT = (JobState.RESERVED,)


def cancel_text(before: Job, after: Job | None, refunded: bool) -> str:
    """What /cancel did, and whether (and why) the seconds came back."""
    short = f"`{before.id[:8]}`"
    if after is not None and not after.terminal and CANCEL_ASKED in after.context:
        return (f"Asked {after.provider} to stop job {short}. Its {after.seconds} s are "
                "refunded once the provider confirms it stopped; if it finishes the video "
                "anyway, it is charged and not posted.")
    if after is not None and not after.terminal:
        return (f"Job {short} moved on ({after.state.value}) while it was being cancelled, "
                "so nothing was cancelled; try again in a moment.")
    if after is None or after.state is not JobState.CANCELLED:
        state = after.state.value if after is not None else "gone"
        return f"Job {short} had already finished ({state}); nothing was cancelled."
    seconds = after.seconds
    if refunded and before.state in NOT_SENT:
        return (f"Cancelled job {short}. It had not been sent to the provider yet, so its "
                f"{seconds} s were refunded.")
    if refunded:
        return (f"Cancelled job {short}. The provider confirms it will not make it, so its "
                f"{seconds} s were refunded.")
    return (f"Cancelled job {short}: the bot stopped waiting for it. It was already with the "
            f"provider, which still makes (and charges for) it, so its {seconds} s were not "
            "refunded.")


def _is_moderator(interaction: discord.Interaction[Any]) -> bool:
    return interaction.guild_id is not None and interaction.permissions.manage_guild


class ForgetButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"forget:(?P<answer>yes|no):(?P<user>[0-9]+):(?P<at>[0-9]+)",
):
    def __init__(self, answer: str, user_id: int, at: int) -> None:
        self.answer, self.user_id, self.at = answer, user_id, at
        yes = answer == "yes"
        super().__init__(discord.ui.Button(
            label="Delete my prompts" if yes else "Keep them",
            style=discord.ButtonStyle.danger if yes else discord.ButtonStyle.secondary,
            custom_id=f"forget:{answer}:{user_id}:{at}",
        ))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str], /,
    ) -> ForgetButton:
        return cls(match["answer"], int(match["user"]), int(match["at"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.user.id != self.user_id:
            await reply(interaction, "This button is for the member who asked.")
            return
        if self.answer == "no":
            await interaction.response.edit_message(content="Nothing was deleted.", view=None)
            return
        if time.time() - self.at > FORGET_TTL_S:
            await interaction.response.edit_message(
                content="This confirmation has expired; run /forget-me again.", view=None)
            return
        await interaction.response.defer()
        bot: VideoBot = interaction.client
        result, images = await forget_member(bot.store, self.user_id)
        text = (f"Done: {result.prompts} prompt(s) replaced with “[deleted]” and {images} "
                "image(s) deleted. Your usage figures (seconds and costs) stay, without the "
                "prompts.")
        if result.unfinished:
            text += (f" {result.unfinished} video(s) still on the way keep their prompt until "
                     "they finish; run /forget-me again afterwards.")
        text += " Videos already posted are channel messages: remove them with their Delete button."
        await interaction.edit_original_response(content=text, view=None)


def forget_view(user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    at = int(time.time())
    view.add_item(ForgetButton("yes", user_id, at))
    view.add_item(ForgetButton("no", user_id, at))
    return view


class Jobs(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ForgetButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ForgetButton)

    @app_commands.command(name="jobs", description="Your recent videos (moderators: anyone's)")
    @app_commands.describe(
        member="Someone else's videos (Manage Server)",
        everyone="Everyone's videos in this server (Manage Server)",
    )
    @app_commands.guild_only()
    async def jobs(
        self, interaction: discord.Interaction[VideoBot], member: discord.Member | None = None,
        everyone: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        others = everyone or (member is not None and member.id != interaction.user.id)
        if others and not _is_moderator(interaction):
            raise NotModerator("You need the Manage Server permission to see other members' "
                               "videos; /jobs alone shows yours.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        if everyone:
            user_id, title = None, "Recent videos in this server"
        elif member is not None and member.id != interaction.user.id:
            user_id, title = member.id, f"Recent videos of {member.display_name}"
        else:
            user_id, title = interaction.user.id, "Your recent videos"
        found = await self.bot.store.jobs_for(interaction.guild_id, user_id, limit=10)
        await interaction.followup.send(
            embed=jobs_embed(found, title=title, show_member=user_id is None), ephemeral=True
        )

    @app_commands.command(name="cancel", description="Stop one of your videos (moderators: "
                          "anyone's)")
    @app_commands.describe(job="The job id (from /jobs or under the status message)")
    @app_commands.guild_only()
    async def cancel(
        self, interaction: discord.Interaction[VideoBot],
        job: app_commands.Range[str, 4, 40],
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        match = JOB_ID.fullmatch(job.strip().lower())
        if match is None:
            raise Refusal("That is not a job id: use the one /jobs shows, like `3f9a12c4`.")
        found = await self.bot.store.find_jobs(interaction.guild_id, match[1])
        if not found:
            raise Refusal(f"There is no job `{match[1]}` in this server; /jobs lists yours.")
        if len(found) > 1:
            raise Refusal(f"More than one job starts with `{match[1]}`; give more of its id.")
        target = found[0]
        moderator = _is_moderator(interaction)
        if target.user_id != interaction.user.id and not moderator:
            raise NotModerator("Only the member who asked for this video, or someone with "
                               "Manage Server, can cancel it.")
        if target.terminal:
            raise Refusal(f"Job `{target.id[:8]}` has already finished "
                          f"({STATE_WORDS[target.state]}); nothing to cancel.")
        by = "the member who asked" if target.user_id == interaction.user.id else "a moderator"
        after, refunded = await self.bot.jobs.cancel(target.id, f"Cancelled by {by}.")
        await interaction.followup.send(cancel_text(target, after, refunded), ephemeral=True)

    @cancel.autocomplete("job")
    async def _unfinished(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        user_id = None if _is_moderator(interaction) else interaction.user.id
        found = await self.bot.store.unfinished_for(interaction.guild_id, user_id)
        choices = []
        for j in found:
            if not j.id.startswith(current.strip().lower()):
                continue
            label = f"{j.id[:8]} · {STATE_WORDS[j.state]} · {j.duration} s · {j.prompt}"
            choices.append(app_commands.Choice(name=label[:100], value=j.id))
        return choices[:25]

    @app_commands.command(name="forget-me", description="Delete the prompts the bot stored "
                          "for you (usage figures stay, anonymised)")
    async def forget_me(self, interaction: discord.Interaction[VideoBot]) -> None:
        await interaction.response.send_message(
            "This replaces every prompt the bot stored for you, in every server, with "
            "“[deleted]” and deletes the images kept for Retry. The seconds and costs of your "
            "videos stay, without the prompts. It cannot be undone.",
            view=forget_view(interaction.user.id), ephemeral=True,
        )


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Jobs(bot))
