"""A fake Discord (REST API, gateway, CDN) on 127.0.0.1 for testing the real discord.py bot."""

from .models import (
    CallbackRecord,
    CommandSync,
    DownloadRecord,
    InteractionRecord,
    Message,
    RequestRecord,
    StoredAttachment,
)
from .pointing import point_discord_py
from .server import FakeDiscord
from .world import Perm

__all__ = [
    "CallbackRecord",
    "CommandSync",
    "DownloadRecord",
    "FakeDiscord",
    "InteractionRecord",
    "Message",
    "Perm",
    "RequestRecord",
    "StoredAttachment",
    "point_discord_py",
]
