"""Provider failover (FALLBACK_PROVIDERS): a job moves to the next provider selling the
same model when its provider cannot take it (out of credit, key refused, model gone,
outage), never after a content refusal or an uncertain create; a provider that failed is
skipped for a cool-down."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import get_model, request_price
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import FakeProvider
from tests.fakes.fal import FakeFal
from tests.fakes.pixazo import FakePixazo
from tests.fakes.replicate import FakeReplicate
from tests.jobs.support import Harness, harness

FAKES: dict[str, type[FakeProvider]] = {
    "apixo": FakeApixo, "aivideoapi": FakeAivideoapi, "pixazo": FakePixazo}
# primary provider, model, fallback provider (the one that sells the same model)
CHAINS = [("apixo", "sora-2", "aivideoapi"), ("aivideoapi", "sora-2", "apixo"),
          ("pixazo", "sora-2-pro", "apixo"), ("apixo", "sora-2-pro", "pixazo")]


def base(fake: FakeProvider) -> str:
    return fake.api_base if isinstance(fake, FakeApixo) else fake.base_url


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


@contextlib.asynccontextmanager
async def chain(
    tmp_path: Path, primary: str, model: str, fallback: str, *, key: str | None = None,
    primary_url: str | None = None,
) -> AsyncIterator[tuple[Harness, FakeProvider, FakeProvider]]:
    async with FAKES[primary](queue_s=0.05, task_s=0.2) as first, \
            FAKES[fallback](queue_s=0.05, task_s=0.2) as second:
        extra: dict[str, Any] = {
            "fallback_providers": [fallback],
            f"{fallback}_api_key": second.api_key, f"{fallback}_base_url": base(second),
        }
        async with harness(tmp_path, provider=primary, model=model,
                           base_url=primary_url or base(first),
                           api_key=key or first.api_key, **extra) as h:
            yield h, first, second


def creates(fake: FakeProvider) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and "/files/" not in r.path)


def harness_options(kind: str, primary: str) -> dict[str, Any]:
    """What the harness needs for ``kind`` before it starts."""
    if kind == "key_refused":
        return {"key": "sk-wrong-key"}
    if kind == "outage" and primary != "aivideoapi":
        return {"primary_url": closed_port_url()}  # nothing answers at all
    return {}


def break_provider(kind: str, fake: FakeProvider, model: str) -> None:
    """Make the running ``fake`` unable to take jobs."""
    if kind == "out_of_credit":
        fake.balance_exhausted = True
    elif kind == "model_gone":
        fake.retired_models.add(model)
    elif kind == "outage" and isinstance(fake, FakeAivideoapi):
        fake.upstream_refusals = 10  # seed 002's 503 upstream_error: refused, refunded


@pytest.mark.parametrize(("primary", "model", "fallback"), CHAINS,
                         ids=[f"{p}-{m}-to-{f}" for p, m, f in CHAINS])
@pytest.mark.parametrize("kind", ["out_of_credit", "key_refused", "model_gone", "outage"])
async def test_a_job_moves_to_the_next_provider_selling_the_model(
    tmp_path: Path, primary: str, model: str, fallback: str, kind: str
) -> None:
    options = harness_options(kind, primary)
    async with chain(tmp_path, primary, model, fallback, **options) as (h, first, second):
        break_provider(kind, first, model)
        job = await h.request(model=model)
        done = await h.wait_state(job.id, "delivered", "failed", within=60)
        assert done.state.value == "delivered", done.error_message
        assert done.provider == fallback and done.model == model
        assert done.context["providers_tried"] == [primary]
        assert first.submits_accepted == 0 and len(second.tasks) == 1
        assert done.price_micros == request_price(get_model(fallback, model), done.seconds)
        assert await h.store.ledger_balance(job.id) == job.seconds  # charged once
        said = [u.message or "" for u in h.recorder.updates if u.job.id == job.id]
        assert any(f"trying {fallback}" in m for m in said)


async def test_no_move_after_a_content_refusal(tmp_path: Path) -> None:
    async with chain(tmp_path, "apixo", "sora-2", "aivideoapi") as (h, first, second):
        job = await h.request(model="sora-2", prompt=f"a {first.content_policy_word} scene")
        done = await h.wait_state(job.id, "failed", "delivered")
        assert done.state.value == "failed" and done.provider == "apixo"
        assert creates(second) == 0
        assert await h.store.ledger_balance(job.id) == 0  # refunded


async def test_no_move_after_an_uncertain_create(tmp_path: Path) -> None:
    async with chain(tmp_path, "apixo", "sora-2", "aivideoapi") as (h, first, second):
        first.submit_5xx_after_create = True  # the task exists; its answer was lost
        job = await h.request(model="sora-2")
        done = await h.wait_state(job.id, "failed", "delivered")
        assert done.provider == "apixo" and creates(second) == 0
        assert len(first.tasks) == 1  # never sent twice, nor elsewhere


async def test_a_failed_provider_is_skipped_for_a_cool_down(tmp_path: Path) -> None:
    async with chain(tmp_path, "apixo", "sora-2", "aivideoapi") as (h, first, second):
        first.balance_exhausted = True
        one = await h.request(model="sora-2")
        await h.wait_state(one.id, "delivered")
        asked = creates(first)
        first.balance_exhausted = False  # it would work now, but is cooling down
        two = await h.request(model="sora-2")
        done = await h.wait_state(two.id, "delivered")
        assert done.provider == "aivideoapi" and creates(first) == asked
        assert len(second.tasks) == 2


async def test_without_an_equivalent_model_the_job_fails_with_a_refund(
    tmp_path: Path
) -> None:
    async with chain(tmp_path, "apixo", "veo-3-1-fast", "aivideoapi") as (h, first, second):
        first.balance_exhausted = True
        job = await h.request(model="veo-3-1-fast", duration=8)
        done = await h.wait_state(job.id, "failed", "delivered")
        assert done.state.value == "failed" and done.error_code == "insufficient_balance"
        assert creates(second) == 0 and await h.store.ledger_balance(job.id) == 0


# -- live models across the resellers that sell them --------------------------------------

LIVE_CHAINS = [("apixo", "fal", "veo-3-1-fast", 8), ("fal", "replicate", "veo-3-1-fast", 8),
               ("apixo", "fal", "kling-2-5-turbo-pro", 5), ("fal", "replicate", "hailuo-2-3", 6)]


def reseller_settings(name: str, fake: FakeProvider) -> dict[str, Any]:
    values: dict[str, Any] = {f"{name}_api_key": fake.api_key, f"{name}_base_url": base(fake)}
    if isinstance(fake, FakeFal):
        values["fal_jwks_url"] = fake.jwks_url
    return values


@contextlib.asynccontextmanager
async def live_chain(tmp_path: Path, primary: str, fallback: str, model: str, **settings: Any
                     ) -> AsyncIterator[tuple[Harness, FakeProvider, FakeProvider]]:
    fakes: dict[str, type[FakeProvider]] = {**FAKES, "fal": FakeFal, "replicate": FakeReplicate}
    async with fakes[primary](queue_s=0.05, task_s=0.2) as first, \
            fakes[fallback](queue_s=0.05, task_s=0.2) as second:
        extra = {**reseller_settings(primary, first), **reseller_settings(fallback, second),
                 "fallback_providers": [fallback], **settings}
        async with harness(tmp_path, provider=primary, model=model, base_url=base(first),
                           api_key=first.api_key, **extra) as h:
            yield h, first, second


@pytest.mark.parametrize(("primary", "fallback", "model", "seconds"), LIVE_CHAINS,
                         ids=[f"{p}-to-{f}-{m}" for p, f, m, _ in LIVE_CHAINS])
async def test_a_live_model_moves_to_the_next_reseller_that_sells_it(
    tmp_path: Path, primary: str, fallback: str, model: str, seconds: int
) -> None:
    prices = {"replicate/veo-3-1-fast": 0.12, "replicate/hailuo-2-3": 0.05}
    async with live_chain(tmp_path, primary, fallback, model,
                          model_prices=prices) as (h, first, second):
        first.balance_exhausted = True
        job = await h.request(model=model, duration=seconds)
        done = await h.wait_state(job.id, "delivered", "failed", within=60)
        assert done.state.value == "delivered", done.error_message
        assert (done.provider, done.model) == (fallback, model)
        assert first.submits_accepted == 0 and second.submits_accepted == 1
        spec = get_model(fallback, model)
        audio = done.context["options"].get("audio")
        assert done.price_micros == request_price(spec, seconds, prices, audio=bool(audio))
        assert await h.store.ledger_balance(job.id) == job.seconds


async def test_a_length_the_next_reseller_does_not_make_fails_with_a_refund(
    tmp_path: Path
) -> None:
    """fal makes 4-second Veo videos; APIXO only 8: the job is not silently lengthened."""
    async with live_chain(tmp_path, "fal", "apixo", "veo-3-1-fast") as (h, first, second):
        first.balance_exhausted = True
        job = await h.request(model="veo-3-1-fast", duration=4)
        done = await h.wait_state(job.id, "failed", "delivered", within=30)
        assert done.state.value == "failed" and done.error_code == "failover_unsuitable"
        assert "apixo cannot take the job as asked" in (done.error_message or "")
        assert "8-second" in (done.error_message or "")
        assert creates(second) == 0 and await h.store.ledger_balance(job.id) == 0


async def test_no_move_after_a_content_refusal_at_fal(tmp_path: Path) -> None:
    async with live_chain(tmp_path, "fal", "replicate", "veo-3-1-fast",
                          model_prices={"replicate/veo-3-1-fast": 0.1}) as (h, first, second):
        job = await h.request(model="veo-3-1-fast", duration=8,
                              prompt=f"a {first.content_policy_word} scene")  # type: ignore[attr-defined]
        done = await h.wait_state(job.id, "failed", "delivered", within=30)
        assert done.state.value == "failed" and done.provider == "fal"
        assert done.error_code == "content_policy_violation"
        assert creates(second) == 0 and await h.store.ledger_balance(job.id) == 0
