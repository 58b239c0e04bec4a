"""Provider storms and timeouts, on submit and on status: nothing lost, nothing posted
twice, never paid twice, the quota ledger balanced."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.support import assert_clean, books, fault_world, settle, videos

pytestmark = pytest.mark.timeout(60)

SUBMIT_PATH = "/api/v1/generateTask"


async def test_submit_429_storm_within_the_retry_budget(tmp_path: Path) -> None:
    async with fault_world(tmp_path) as (w, fake):
        fake.fail_submits_with_429, fake.retry_after = 3, 0.05
        await videos(w, ["fox", "owl"])
        jobs = await settle(w, 2)
        assert_clean(await books(w, jobs), delivered=2)
        assert fake.submits_accepted == 2
        assert len(fake.requests_to("POST", SUBMIT_PATH)) == 5  # 3 refused, 2 accepted


async def test_submit_429_storm_beyond_the_budget_refunds_then_recovers(tmp_path: Path) -> None:
    async with fault_world(tmp_path) as (w, fake):
        fake.fail_submits_with_429, fake.retry_after = 1000, 0.05
        await videos(w, ["fox", "owl"])
        jobs = await settle(w, 2)
        result = await books(w, jobs)
        assert_clean(result, delivered=0)
        assert result.failed == 2 and fake.submits_accepted == 0
        assert all(j.error_code == "rate_limited" for j in jobs)
        assert len(fake.requests_to("POST", SUBMIT_PATH)) <= 2 * 4  # bounded attempts
        fake.fail_submits_with_429 = 0  # the storm ends: the bot works again
        await videos(w, ["hare"])
        assert_clean(await books(w, await settle(w, 3)), delivered=1)


@pytest.mark.parametrize("fault", ["5xx-after-create", "timeout"])
async def test_uncertain_submit_is_refunded_and_never_resent(tmp_path: Path, fault: str) -> None:
    async with fault_world(tmp_path) as (w, fake):
        if fault == "timeout":
            fake.submit_delay_s = 2.0  # longer than the submit timeout (1 s here)
        else:
            fake.submit_5xx_after_create = True
        await videos(w, ["fox"])
        (job,) = await settle(w, 1)
        assert_clean(await books(w, [job]), delivered=0)
        assert job.error_code == "submit_uncertain"
        # The provider did create the task; sending it again would have paid twice.
        assert len(fake.requests_to("POST", SUBMIT_PATH)) == 1
        assert w.videos() == []


async def test_status_storms_and_timeouts_end_in_delivery(tmp_path: Path) -> None:
    async with fault_world(tmp_path) as (w, fake):
        fake.status_5xx, fake.status_429s, fake.retry_after = 6, 4, 0.05
        fake.status_delay_s = 1.5  # longer than the status timeout (1 s here)
        await videos(w, ["fox", "owl", "hare"])
        await fake.wait_until(lambda: len(fake.requests_to("GET", "/api/v1/statusTask")) > 12,
                              within=20)
        fake.status_delay_s = 0.0
        jobs = await settle(w, 3)
        assert_clean(await books(w, jobs), delivered=3)
        assert fake.submits_accepted == 3
