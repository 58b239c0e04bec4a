"""The forms (modals) members fill in: Animate from a message and Remix a video.

Discord lets a modal hold text inputs of at most 4000 characters; the length and the
orientation are short text inputs, checked here with a clear message (the model's own
rules are checked after, exactly as for the slash commands)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.errors import Refusal

PROMPT_MAX = 4000  # what one modal text input holds
ORIENTATIONS = {"landscape": "landscape", "portrait": "portrait", "16:9": "landscape",
                "9:16": "portrait", "wide": "landscape", "tall": "portrait"}

Submit = Callable[[discord.Interaction[Any], "VideoForm"], Awaitable[None]]
OnError = Callable[[discord.Interaction[Any], Exception], Awaitable[None]]


def parse_length(text: str) -> int | None:
    text = text.strip().lower().removesuffix("s").removesuffix("seconds").strip()
    if not text:
        return None
    if not text.isdigit():
        raise Refusal("The length must be a whole number of seconds, like 8.")
    return int(text)


def parse_orientation(text: str) -> str | None:
    text = text.strip().lower()
    if not text:
        return None
    if text not in ORIENTATIONS:
        raise Refusal("The orientation must be landscape or portrait.")
    return ORIENTATIONS[text]


class VideoForm(discord.ui.Modal):
    """A prompt, and optionally a length and an orientation."""

    def __init__(
        self, *, title: str, submit: Submit, on_failure: OnError, prompt: str = "",
        prompt_hint: str | None = None, length: str = "", orientation: str = "",
        timeout: float = 900,
    ) -> None:
        super().__init__(title=title[:45], timeout=timeout)
        self._submit, self._on_failure = submit, on_failure
        self.prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Prompt", style=discord.TextStyle.paragraph, default=prompt or None,
            placeholder=(prompt_hint or "What the video should show")[:100],
            min_length=1, max_length=PROMPT_MAX,
        )
        self.length: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Length in seconds (optional)", required=False, default=length or None,
            placeholder="the model's usual length", max_length=12,
        )
        self.orientation: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Orientation (optional)", required=False, default=orientation or None,
            placeholder="landscape or portrait", max_length=12,
        )
        for item in (self.prompt, self.length, self.orientation):
            self.add_item(item)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self._submit(interaction, self)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await self._on_failure(interaction, error)
