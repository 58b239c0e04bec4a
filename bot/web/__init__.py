"""The bot's own aiohttp server: provider callbacks, health, images served to providers."""
