"""The spend cap end to end through the fake Discord: requests are accepted until the next
would pass the cap, then refused clearly at no cost; a failed job gives its money back;
/quota show, /usage, the status message, the posted video and the audit line show the
price."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bot.support import world
from tests.bot.test_moderation import moderate
from tests.fakes.apixo import FakeApixo

pytestmark = pytest.mark.timeout(120)


async def test_the_spend_cap_holds_and_a_failure_gives_the_money_back(tmp_path: Path) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, world(
        tmp_path, provider="apixo", apixo_api_key=fake.api_key, apixo_base_url=fake.api_base,
        model="", default_quota_seconds=1000,
    ) as w:  # veo-3-1-fast at APIXO: $0.20 a video
        audit = w.fd.add_text_channel(w.guild, "audit")
        await moderate(w, "settings", {"audit_channel": audit}, needle="updated")
        capped = await w.command("quota", {"seconds": 1000, "spend": 0.5}, subcommand="set",
                                 user=w.moderator)
        said = await w.wait_reply(capped, "Quota updated")
        assert "$0.50" in said
        for n in (1, 2):
            asked = await w.command("video", {"prompt": f"heron {n}"})
            await w.wait_videos(n)
            status = await w.wait_reply(asked, "est. $0.20")
            assert "est. $0.20" in status
        posted = w.videos()[-1]
        assert "est. $0.20" in str(posted.embeds)

        refused = await w.command("video", {"prompt": "heron 3"})
        text = await w.refused(refused, "spend cap")
        assert "$0.10 left of $0.50" in text and "Nothing was charged" in text
        assert "renews <t:" in text
        await asyncio.sleep(0.3)
        assert fake.submits_accepted == 2

        shown = await w.command("quota", subcommand="show")
        await w.wait_reply(shown, "$0.10 left of $0.50 ($0.40 used)")

        # A failure refunds the money too: the next request fits again.
        await w.command("quota", {"seconds": 1000, "spend": 0.6}, subcommand="set",
                        user=w.moderator)
        fake.outcome = "failed"
        failing = await w.command("video", {"prompt": "heron 4"})
        await w.wait_reply(failing, "refunded", within=20)
        fake.outcome = "success"
        shown = await w.command("quota", subcommand="show")
        await w.wait_reply(shown, "$0.20 left of $0.60 ($0.40 used)")
        fits = await w.command("video", {"prompt": "heron 5"})
        await w.wait_videos(3)
        await w.wait_reply(fits, "est. $0.20")

        usage = await w.command("usage")
        report = await w.wait_reply(usage, "By model")
        assert "`veo-3-1-fast` on apixo" in report and "$0.60" in report

        def audit_lines() -> list[str]:
            return [m.content or "" for m in w.fd.messages(audit, source="channel")]

        await w.fd.wait_for(lambda: any("spend cap" in line for line in audit_lines()), 10)
        assert any("est. $0.20" in line and "request" in line for line in audit_lines())


async def test_an_unknown_price_under_a_spend_cap_is_refused_clearly(tmp_path: Path) -> None:
    async with FakeApixo(queue_s=0.05, task_s=0.2) as fake, world(
        tmp_path, provider="apixo", apixo_api_key=fake.api_key, apixo_base_url=fake.api_base,
        model="kling-2-5-turbo-pro",  # APIXO publishes no price for it
    ) as w:
        await w.command("quota", {"seconds": 1000, "spend": 5}, subcommand="set",
                        user=w.moderator)
        await asyncio.sleep(0.3)
        asked = await w.command("video", {"prompt": "a kite", "duration": 5})
        text = await w.refused(asked, "MODEL_PRICES")
        assert "nothing was charged" in text
        assert fake.submits_accepted == 0
