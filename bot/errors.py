"""Errors a member can cause and fix: raised anywhere below the cogs, answered by the one
central handler with the message they carry (never a traceback)."""

from __future__ import annotations


class Refusal(Exception):
    """Something the member can fix; nothing was charged."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message
