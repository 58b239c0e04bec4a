"""Prometheus /metrics: the real bot against the fake Discord and the APIXO emulator runs a
few jobs, then the exposition is fetched on loopback and parsed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bot.config import SettingsError, load_settings
from tests.bot.support import world
from tests.fakes.apixo import FakeApixo

pytestmark = pytest.mark.timeout(90)

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "videobot.json"
PROMPT = "a secret lighthouse at dusk"


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def _post(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=b"{}") as response:
        return response.status


def _samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def _run_jobs(tmp_path: Path) -> dict[str, object]:
    """Two jobs on the APIXO emulator with callbacks on: one delivered, one refused for
    credit; then forged callbacks. Returns what the tests look at."""
    async with FakeApixo() as fake, world(
        tmp_path, provider="apixo", apixo_api_key=fake.api_key, apixo_base_url=fake.api_base,
        public_base_url="http://127.0.0.1:1", metrics_port=0, metrics_host="127.0.0.1",
    ) as w:
        bot = w.bot
        bot.webhook.public_base_url = f"http://127.0.0.1:{bot.webhook.port}"
        await w.command("video", {"prompt": PROMPT, "duration": 8})
        await w.wait_videos(1)
        (done,) = await w.settled(1)
        fake.balance_exhausted = True
        await w.command("video", {"prompt": PROMPT, "duration": 4}, user=w.moderator)
        jobs = await w.settled(2)
        base = f"http://127.0.0.1:{bot.webhook.port}/callbacks"
        token = bot.jobs.token_for(done.id)
        forged = [await _post(f"{base}/apixo/not-a-token"),
                  await _post(f"{base}/pixazo/{token}")]
        assert bot.metrics.port not in (None, bot.webhook.port)
        metrics = await _get(f"http://127.0.0.1:{bot.metrics.port}/metrics")
        on_webhook = await _get(f"http://127.0.0.1:{bot.webhook.port}/metrics")
        return {
            "metrics": metrics, "on_webhook": on_webhook, "forged": forged, "jobs": jobs,
            "secrets": [str(w.guild), str(w.member), str(w.moderator), str(w.channel),
                        fake.api_key, token, PROMPT, *(job.id for job in jobs)],
        }


async def test_metrics_after_a_few_jobs(tmp_path: Path) -> None:
    seen = await _run_jobs(tmp_path)
    status, content_type, text = seen["metrics"]  # type: ignore[misc]
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(text)
    jobs = seen["jobs"]
    assert sorted(job.state.value for job in jobs) == ["delivered", "failed"]  # type: ignore[attr-defined]
    model = jobs[0].model  # type: ignore[index]

    assert _value(samples, "videobot_jobs_total", outcome="delivered", provider="apixo",
                  model=model) == 1
    assert _value(samples, "videobot_jobs_total", outcome="failed", provider="apixo") == 1
    for state in ("reserved", "submitting", "submitted", "succeeded"):
        assert _value(samples, "videobot_jobs_in_flight", state=state) == 0
    # Both commands were acknowledged; one render and one delivery were timed.
    assert _value(samples, "videobot_ack_latency_seconds_count",
                  kind="application_command") == 2
    assert _value(samples, "videobot_render_seconds_count", provider="apixo", model=model) == 1
    assert _value(samples, "videobot_delivery_seconds_count", provider="apixo") == 1
    assert _value(samples, "videobot_delivery_seconds_sum") > 0
    # The emulator's own callback was accepted; the two forged ones were refused.
    assert seen["forged"] == [404, 404]
    assert _value(samples, "videobot_callbacks_total", outcome="accepted") >= 1
    assert _value(samples, "videobot_callbacks_total", outcome="unknown_token") == 1
    assert _value(samples, "videobot_callbacks_total", outcome="wrong_provider",
                  provider="pixazo") == 1
    # 8 s charged for the delivered video, 4 s refunded for the refused one.
    assert _value(samples, "videobot_quota_seconds_total", outcome="charged") == 8
    assert _value(samples, "videobot_quota_seconds_total", outcome="refunded") == 4
    assert _value(samples, "videobot_provider_errors_total", provider="apixo", op="submit",
                  kind="insufficient_balance") == 1


async def test_labels_carry_no_ids_prompts_or_keys_and_webhook_has_no_metrics(
    tmp_path: Path,
) -> None:
    seen = await _run_jobs(tmp_path)
    _, _, text = seen["metrics"]  # type: ignore[misc]
    label_values = {v for s in _samples(text) for v in s.labels.values()}
    assert label_values  # the check below looks at something
    for secret in seen["secrets"]:  # type: ignore[attr-defined]
        assert not any(secret in value for value in label_values), secret
        assert secret not in text
    status, _, body = seen["on_webhook"]  # type: ignore[misc]
    assert status == 404 and "videobot_" not in body

    # The Grafana dashboard queries only metrics the bot exposes.
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bvideobot_[a-z_]+", expr)}
    assert len(queried) >= 8
    exposed = {s.name for s in _samples(text)}
    assert sorted(queried - exposed) == []


async def test_metrics_off_by_default_and_never_on_the_webhook_port(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        assert not w.bot.metrics.enabled and w.bot.metrics.port is None
        status, _, _ = await _get(f"http://127.0.0.1:{w.bot.webhook.port}/metrics")
        assert status == 404
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, webhook_port=8080, metrics_port=8080)
    assert any(p.startswith("METRICS_PORT:") for p in caught.value.problems)
