"""The persistent buttons under a posted video (Retry, Remix, Delete).

Their custom ids carry the job id, so a click works after any restart: discord.py matches
the id against ``ResultButton``'s template and rebuilds the button. What a click does is
registered at run time in the bot's ``ResultActions`` by the cog that owns the behaviour,
so this module (and the posting that needs the view) never imports a cog.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.store import Job

log = logging.getLogger(__name__)

ActionHandler = Callable[[discord.Interaction[Any], str], Awaitable[None]]
# Told of any error a click raised: answers the member and logs (cogs/errors.py).
ErrorHandler = Callable[[discord.Interaction[Any], BaseException, str], Awaitable[None]]

# action -> (label, emoji, style); the order is the order of the buttons.
BUTTONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "retry": ("Retry", "🔁", discord.ButtonStyle.secondary),
    "remix": ("Remix", "🎨", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}


class ResultActions:
    """What each button does, registered by the cogs when they load, and the one error
    handler every click's failure goes to."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}
        self.on_error: ErrorHandler | None = None

    def register(self, action: str, handler: ActionHandler) -> None:
        self._handlers[action] = handler

    def unregister(self, action: str) -> None:
        self._handlers.pop(action, None)

    def get(self, action: str) -> ActionHandler | None:
        return self._handlers.get(action)

    async def run(self, interaction: discord.Interaction[Any], action: str, job_id: str) -> None:
        """Run a click's handler; any error it raises goes to the error handler, so the
        member is never left on "thinking..."."""
        handler = self._handlers.get(action)
        try:
            if handler is None:
                raise LookupError(f"no handler for the {action!r} button")
            await handler(interaction, job_id)
        except Exception as exc:
            where = f"button {action} (job {job_id})"
            if self.on_error is None:
                log.exception("%s failed", where)
                return
            await self.on_error(interaction, exc, where)


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
        if isinstance(actions, ResultActions):
            await actions.run(interaction, self.action, self.job_id)


def is_result_message(message: discord.Message, job_id: str) -> bool:
    """Whether ``message`` is the posted video of ``job_id``: only that message carries
    the job's result buttons (a status message or anything else never does)."""
    wanted = {f"video:{action}:{job_id}" for action in BUTTONS}
    for row in message.components:
        for child in getattr(row, "children", ()):
            if getattr(child, "custom_id", None) in wanted:
                return True
    return False


def result_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in BUTTONS:
        view.add_item(ResultButton(action, job.id))
    return view
