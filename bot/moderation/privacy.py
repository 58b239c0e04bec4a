"""/forget-me: a member's prompts and images go; the usage figures stay, without them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.moderation.policy import ForgetResult
from bot.store import Store

log = logging.getLogger(__name__)


def _unlink(paths: list[str]) -> int:
    removed = 0
    for name in paths:
        try:
            Path(name).unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not delete a forgotten image (%s)", name, exc_info=True)
    return removed


async def forget_member(store: Store, user_id: int) -> tuple[ForgetResult, int]:
    """Replace the member's stored prompts with "[deleted]" and delete their kept images.

    Returns what the store changed and how many image files were deleted.
    """
    result = await store.forget_member(user_id)
    removed = await asyncio.to_thread(_unlink, result.image_paths)
    log.info("forgot the prompts of a member: %d prompt(s), %d image(s)",
             result.prompts, removed)
    return result, removed
