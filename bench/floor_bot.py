"""The floor for acknowledgement latency: a minimal discord.py bot that only defers.

Same library, same intents and the same two commands as the real bot, but each command
does nothing except ``interaction.response.defer(thinking=True)``. Run by bench/ack.py as
``python -m bench.floor_bot`` with DISCORD_TOKEN, DISCORD_API_BASE_URL and
DISCORD_GATEWAY_URL pointing at the fake Discord; prints READY once connected.
"""

from __future__ import annotations

import os

import discord
import yarl
from discord import app_commands


class FloorBot(discord.Client):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents)
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="video", description="defer only")
        async def video(interaction: discord.Interaction, prompt: str,
                        duration: int | None = None) -> None:
            await interaction.response.defer(thinking=True)

        @self.tree.command(name="animate", description="defer only")
        async def animate(interaction: discord.Interaction, image: discord.Attachment,
                          prompt: str, duration: int | None = None) -> None:
            await interaction.response.defer(thinking=True)

    async def on_ready(self) -> None:
        print("READY", flush=True)


def main() -> None:
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE_URL"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False
    FloorBot().run(os.environ["DISCORD_TOKEN"], log_handler=None)


if __name__ == "__main__":
    main()
