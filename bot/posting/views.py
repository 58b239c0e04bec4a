"""The persistent buttons under a posted video (Retry, Remix, Delete).

Their custom ids carry the job id, so a click works after any restart: discord.py matches
the id against ``ResultButton``'s template and rebuilds the button. What a click does is
registered at run time in the bot's ``ResultActions`` by the cog that owns the behaviour,
so this module (and the posting that needs the view) never imports a cog.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.store import Job

ActionHandler = Callable[[discord.Interaction[Any], str], Awaitable[None]]

# action -> (label, emoji, style); the order is the order of the buttons.
BUTTONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "retry": ("Retry", "🔁", discord.ButtonStyle.secondary),
    "remix": ("Remix", "🎨", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}


class ResultActions:
    """What each button does, registered by the cogs when they load."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}

    def register(self, action: str, handler: ActionHandler) -> None:
        self._handlers[action] = handler

    def unregister(self, action: str) -> None:
        self._handlers.pop(action, None)

    def get(self, action: str) -> ActionHandler | None:
        return self._handlers.get(action)


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"video:(?P<action>retry|remix|delete):(?P<job>[0-9a-f]{32})",
):
    def __init__(self, action: str, job_id: str) -> None:
        self.action = action
        self.job_id = job_id
        label, emoji, style = BUTTONS[action]
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=style, custom_id=f"video:{action}:{job_id}"
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str], /,
    ) -> ResultButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        actions = getattr(interaction.client, "result_actions", None)
        handler = actions.get(self.action) if isinstance(actions, ResultActions) else None
        if handler is not None:
            await handler(interaction, self.job_id)


def result_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in BUTTONS:
        view.add_item(ResultButton(action, job.id))
    return view
