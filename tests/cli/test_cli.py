"""``python -m bot generate`` and ``check`` as a user runs them, against the emulators."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from tests.fakes.aivideoapi import FakeAivideoapi
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import FakeProvider
from tests.fakes.fal import FakeFal
from tests.fakes.pixazo import FakePixazo
from tests.fakes.replicate import FakeReplicate

PROVIDERS = {"apixo": FakeApixo, "aivideoapi": FakeAivideoapi, "pixazo": FakePixazo}
MODELS = {"apixo": "sora-2", "aivideoapi": "sora-2", "pixazo": "sora-2-pro"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    for name in ("PROVIDER", "MODEL", "PUBLIC_BASE_URL", "DISCORD_TOKEN", "POLL_FIRST_S",
                 "POLL_INTERVAL_S", "WEBHOOK_PORT", "WEBHOOK_HOST"):
        env.pop(name, None)
    env.update(DATABASE_PATH=str(tmp_path / "data" / "bot.sqlite3"), POLL_FIRST_S="0.1",
               POLL_INTERVAL_S="0.2", SANDBOX_DELAY_S="0.5")
    env.update(extra)
    return env


def provider_env(name: str, fake: FakeProvider) -> dict[str, str]:
    base = fake.api_base if isinstance(fake, FakeApixo) else fake.base_url
    return {"PROVIDER": name, "MODEL": MODELS[name], f"{name.upper()}_API_KEY": fake.api_key,
            f"{name.upper()}_BASE_URL": base}


async def run(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_mp4(path: Path, seconds: float) -> None:
    with av.open(str(path)) as container:
        assert container.streams.video, "no video stream"
        frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0
        assert abs(float(container.duration or 0) / 1e6 - seconds) < 0.6


async def test_sandbox_generate_writes_a_decodable_mp4(tmp_path: Path) -> None:
    code, out, err = await run(base_env(tmp_path), tmp_path, "generate", "--prompt",
                               "a red fox in snow", "--duration", "4", "--out", "fox.mp4")
    assert code == 0, err
    assert "SANDBOX" in out
    assert_mp4(tmp_path / "fox.mp4", 4)
    assert "succeeded" in err and "[00:0" in err  # progress: state and elapsed time


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("callbacks", [False, True], ids=["polling", "callback"])
async def test_generate_against_each_emulator(tmp_path: Path, name: str, callbacks: bool) -> None:
    async with PROVIDERS[name]() as fake:
        env = base_env(tmp_path, **provider_env(name, fake))
        if callbacks:
            port = free_port()
            env.update(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", WEBHOOK_HOST="127.0.0.1",
                       WEBHOOK_PORT=str(port), POLL_FIRST_S="60", POLL_INTERVAL_S="60")
        code, out, err = await run(env, tmp_path, "generate", "--prompt", "a red fox in snow",
                                   "--duration", "8", "--out", "fox.mp4")
        assert code == 0, err
        assert out.startswith("wrote fox.mp4") and "SANDBOX" not in out
        assert_mp4(tmp_path / "fox.mp4", 8)
        assert fake.submits_accepted == 1
        if callbacks:
            assert fake.callbacks_delivered and "callback received" in err


@pytest.mark.parametrize("name", ["apixo", "pixazo"])
async def test_generate_image_to_video(tmp_path: Path, name: str) -> None:
    Image.new("RGB", (900, 600), (200, 40, 40)).save(tmp_path / "photo.png")
    async with PROVIDERS[name]() as fake:
        env = base_env(tmp_path, **provider_env(name, fake))
        port = free_port()  # APIXO fetches the image by URL from the bot's own server
        env.update(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", WEBHOOK_HOST="127.0.0.1",
                   WEBHOOK_PORT=str(port))
        code, _, err = await run(env, tmp_path, "generate", "--prompt", "make it move",
                                 "--image", "photo.png", "--out", "out.mp4")
        assert code == 0, err
        (task,) = fake.tasks.values()
        assert task.image_info is not None
        if name == "pixazo":  # fitted to an exact allowed size and sent inline
            assert (task.image_info.width, task.image_info.height) == (1280, 720)
        assert_mp4(tmp_path / "out.mp4", 4)


async def test_wrong_key_exits_with_one_line(tmp_path: Path) -> None:
    async with FakeApixo() as fake:
        env = base_env(tmp_path, **provider_env("apixo", fake))
        env["APIXO_API_KEY"] = "wrong-key-123456"
        code, out, err = await run(env, tmp_path, "generate", "--prompt", "fox", "--out", "x.mp4")
        assert code == 1
        lines = [line for line in err.splitlines() if line.startswith("error")]
        assert lines == ["error: the APIXO API key was rejected; check APIXO_API_KEY"]
        assert "wrong-key-123456" not in out + err
        assert fake.submits_accepted == 0


async def test_two_429s_then_exactly_one_task(tmp_path: Path) -> None:
    async with FakeApixo() as fake:
        fake.fail_submits_with_429, fake.retry_after = 2, 0.2
        env = base_env(tmp_path, **provider_env("apixo", fake))
        code, _, err = await run(env, tmp_path, "generate", "--prompt", "fox", "--out", "x.mp4")
        assert code == 0, err
        assert fake.submits_accepted == 1
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prompt", "   "], "prompt"),
        (["--prompt", "x" * 5001], "5,000"),
        (["--prompt", "fox", "--duration", "5"], "4, 8"),
        (["--prompt", "fox", "--orientation", "sideways"], "orientation"),
        (["--prompt", "fox", "--image", "missing.png"], "cannot read"),
        (["--prompt", "fox", "--image", "notes.png"], "notes.png"),
        (["--prompt", "fox", "--model", "sora-9"], "sora-9"),
    ],
)
async def test_bad_input_is_one_line_and_sends_nothing(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels")
    async with FakeAivideoapi() as fake:
        env = base_env(tmp_path, **provider_env("aivideoapi", fake))
        code, _, err = await run(env, tmp_path, "generate", *args, "--out", "x.mp4")
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and needle in err, err
        assert "Traceback" not in err
        assert fake.requests == []


async def test_missing_settings_are_named_without_a_traceback(tmp_path: Path) -> None:
    env = base_env(tmp_path, PROVIDER="pixazo", WEBHOOK_PORT="eighty")
    code, _, err = await run(env, tmp_path, "generate", "--prompt", "fox", "--out", "x.mp4")
    assert code == 2 and "Traceback" not in err
    assert "WEBHOOK_PORT" in err
    code, _, err = await run(base_env(tmp_path, PROVIDER="pixazo"), tmp_path, "generate",
                             "--prompt", "fox", "--out", "x.mp4")
    assert code == 2 and err.strip() == "error: PIXAZO_API_KEY: required when PROVIDER=pixazo"
    code, _, err = await run(base_env(tmp_path), tmp_path)  # the bot needs DISCORD_TOKEN
    assert code == 2 and "DISCORD_TOKEN" in err and "Traceback" not in err


async def test_check_reports_keys(tmp_path: Path) -> None:
    async with FakeApixo() as good, FakePixazo() as bad:
        env = base_env(tmp_path, **provider_env("apixo", good))
        env.update(PIXAZO_API_KEY="not-the-key", PIXAZO_BASE_URL=bad.base_url,
                   DISCORD_API_BASE_URL="http://127.0.0.1:9/api/v10")
        code, out, _ = await run(env, tmp_path, "check")
        assert code == 1
        assert "provider apixo (PROVIDER): key accepted" in out
        assert "provider pixazo: PIXAZO_API_KEY was rejected" in out
        assert "DISCORD_TOKEN is not set" in out
        assert "not-the-key" not in out


async def test_check_warns_about_a_retired_model(tmp_path: Path) -> None:
    async with FakeApixo() as fake, FakeAivideoapi() as aiv:
        env = base_env(tmp_path, **provider_env("apixo", fake))  # MODEL=sora-2, explicitly
        _, out, _ = await run(env, tmp_path, "check")
        (line,) = [x for x in out.splitlines() if x.strip().startswith("warning")]
        assert "MODEL is set to sora-2, a retired model" in line and "veo-3-1-fast" in line
        env.pop("MODEL")
        _, out, _ = await run(env, tmp_path, "check")
        assert "warning" not in out and "provider apixo (PROVIDER): key accepted" in out
        env = base_env(tmp_path, **provider_env("aivideoapi", aiv))
        env.pop("MODEL")
        _, out, _ = await run(env, tmp_path, "check")
        assert "provider aivideoapi has no live model" in out


NEW_MODELS = {  # catalog id -> (APIXO model, the input fields besides the prompt, seconds)
    "veo-3-1-fast": ("veo-3-1", {"generationType": "TEXT_2_VIDEO", "mode": "fast",
                                 "aspect_ratio": "16:9"}, 8),
    "veo-3-1": ("veo-3-1", {"generationType": "TEXT_2_VIDEO", "mode": "quality",
                            "aspect_ratio": "16:9"}, 8),
    "wan-2-5-video": ("wan-2-5-video", {"mode": "text-to-video", "duration": 5,
                                        "aspect_ratio": "16:9", "resolution": "720p"}, 5),
    "kling-2-5-turbo-pro": ("kling-2-5-turbo-pro", {"mode": "text-to-video", "duration": 5,
                                                    "aspect_ratio": "16:9"}, 5),
    "kling-2-1": ("kling-2-1", {"mode": "master-text-to-video", "duration": 5,
                                "aspect_ratio": "16:9"}, 5),
    "hailuo-2-3": ("hailuo-2-3", {"mode": "standard-text-to-video", "duration": 6}, 6),
    "hailuo-2-3-pro": ("hailuo-2-3", {"mode": "pro-text-to-video"}, 5),
}


@pytest.mark.parametrize("model", sorted(NEW_MODELS))
async def test_generate_each_model_after_sora(tmp_path: Path, model: str) -> None:
    api_model, fields, seconds = NEW_MODELS[model]
    async with FakeApixo() as fake:
        env = base_env(tmp_path, **provider_env("apixo", fake))
        env.pop("MODEL")
        code, out, err = await run(env, tmp_path, "generate", "--prompt", "a heron",
                                   "--model", model, "--out", "heron.mp4")
        assert code == 0, err
        assert f"{model}: {seconds} s of video" in out
        assert_mp4(tmp_path / "heron.mp4", seconds)
        (task,) = fake.tasks.values()
        assert task.model == api_model
        assert task.body["input"] == {"prompt": "a heron", **fields}


async def test_generate_with_model_unset_uses_veo_fast_and_reports_its_price(
    tmp_path: Path
) -> None:
    async with FakeApixo() as fake:
        env = base_env(tmp_path, **provider_env("apixo", fake))
        env.pop("MODEL")
        code, out, err = await run(env, tmp_path, "generate", "--prompt", "a heron",
                                   "--out", "heron.mp4")
        assert code == 0, err
        assert "veo-3-1-fast: 8 s of video, est. $0.20" in out
        code, _, err = await run(env, tmp_path, "generate", "--prompt", "a heron",
                                 "--duration", "4", "--out", "x.mp4")
        assert code == 2 and err.strip() == (
            "error: veo-3-1-fast makes 8-second videos; leave --duration out")
        assert fake.submits_accepted == 1


async def test_generate_with_an_end_frame(tmp_path: Path) -> None:
    Image.new("RGB", (900, 600), (200, 40, 40)).save(tmp_path / "start.png")
    Image.new("RGB", (900, 600), (40, 40, 200)).save(tmp_path / "end.webp")
    async with FakeApixo() as fake:
        env = base_env(tmp_path, **provider_env("apixo", fake))
        port = free_port()
        env.update(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", WEBHOOK_HOST="127.0.0.1",
                   WEBHOOK_PORT=str(port), MODEL="veo-3-1")
        code, out, err = await run(env, tmp_path, "generate", "--prompt", "the door opens",
                                   "--image", "start.png", "--end-image", "end.webp",
                                   "--seed", "11", "--out", "door.mp4")
        assert code == 0, err
        (task,) = fake.tasks.values()
        inp = task.body["input"]
        assert inp["generationType"] == "FIRST_AND_LAST_FRAMES_2_VIDEO" and inp["seed"] == 11
        assert len(inp["image_urls"]) == 2 and task.image_info is not None
        assert "veo-3-1: 8 s of video, est. $1.50" in out
        code, _, err = await run(env, tmp_path, "generate", "--prompt", "fox", "--model",
                                 "hailuo-2-3", "--image", "start.png", "--end-image",
                                 "end.webp", "--out", "x.mp4")
        assert code == 2 and "takes no end frame" in err
        assert fake.submits_accepted == 1


@pytest.mark.parametrize(("model", "extra", "seconds"), [
    ("veo-3-1-fast", [], 8),
    ("wan-2-5-video", ["--duration", "10", "--image", "photo.png"], 10),
    ("kling-2-5-turbo-pro", ["--image", "photo.png", "--end-image", "photo.png"], 5),
    ("hailuo-2-3-pro", [], 5),
])
async def test_sandbox_makes_each_shape(tmp_path: Path, model: str, extra: list[str],
                                        seconds: int) -> None:
    Image.new("RGB", (900, 600), (200, 40, 40)).save(tmp_path / "photo.png")
    code, out, err = await run(base_env(tmp_path), tmp_path, "generate", "--prompt", "a fox",
                               "--model", model, *extra, "--out", "fox.mp4")
    assert code == 0, err
    assert "SANDBOX" in out and f"{model}: {seconds} s of video" in out
    assert_mp4(tmp_path / "fox.mp4", seconds)


def reseller_env(tmp_path: Path, name: str, fake: FakeProvider, **extra: str) -> dict[str, str]:
    env = base_env(tmp_path, **{f"{name.upper()}_API_KEY": fake.api_key,
                                f"{name.upper()}_BASE_URL": fake.base_url})
    if isinstance(fake, FakeFal):
        env["FAL_JWKS_URL"] = fake.jwks_url
    env.update(extra)
    return env


@pytest.mark.parametrize("name", ["fal", "replicate"])
async def test_generate_at_fal_and_replicate_with_signed_callbacks(tmp_path: Path,
                                                                   name: str) -> None:
    cls = FakeFal if name == "fal" else FakeReplicate
    async with cls() as fake:
        port = free_port()
        env = reseller_env(tmp_path, name, fake, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                           WEBHOOK_HOST="127.0.0.1", WEBHOOK_PORT=str(port),
                           POLL_FIRST_S="60", POLL_INTERVAL_S="60",
                           MODEL_PRICES="replicate/veo-3-1-fast=0.10")
        code, out, err = await run(env, tmp_path, "generate", "--provider", name, "--prompt",
                                   "a red fox in snow", "--duration", "6", "--audio", "off",
                                   "--out", "fox.mp4")
        assert code == 0, err
        assert out.startswith("wrote fox.mp4") and "veo-3-1-fast: 6 s of video" in out
        assert "est. $0.60" in out
        assert_mp4(tmp_path / "fox.mp4", 6)
        (task,) = fake.tasks.values()
        sent = task.body["input"] if name == "replicate" else task.body
        assert sent["generate_audio"] is False
        assert fake.callbacks_delivered and "callback received" in err
        code, _, err = await run(env, tmp_path, "generate", "--provider", name, "--model",
                                 "hailuo-2-3", "--prompt", "x", "--audio", "on",
                                 "--out", "no.mp4")
        assert code == 2 and "does not let you choose sound" in err
        assert fake.submits_accepted == 1


async def test_check_reports_fal_and_replicate_keys_without_making_anything(
    tmp_path: Path
) -> None:
    async with FakeFal() as fal, FakeReplicate() as rep:
        env = reseller_env(tmp_path, "fal", fal, PROVIDER="fal",
                           DISCORD_API_BASE_URL="http://127.0.0.1:9/api/v10")
        env.update(REPLICATE_API_TOKEN="r8_wrong", REPLICATE_BASE_URL=rep.base_url)
        code, out, _ = await run(env, tmp_path, "check")
        assert code == 1
        assert "provider fal (PROVIDER): key accepted" in out
        assert "provider replicate: REPLICATE_API_KEY was rejected" in out
        assert "r8_wrong" not in out
        assert fal.submits_accepted == 0 and rep.submits_accepted == 0
        assert [r.method for r in fal.requests] == ["GET"]  # one status read, no create


async def test_the_sandbox_mirrors_fal_s_shapes_for_free(tmp_path: Path) -> None:
    """SANDBOX_LIKE=fal: the free sandbox offers fal's lengths and its sound option."""
    env = base_env(tmp_path, SANDBOX_LIKE="fal")
    code, out, err = await run(env, tmp_path, "generate", "--model", "veo-3-1-fast",
                               "--prompt", "a red fox", "--duration", "6", "--audio", "off",
                               "--out", "fox.mp4")
    assert code == 0, err
    assert "SANDBOX" in out and "6 s of video" in out
    assert_mp4(tmp_path / "fox.mp4", 6)
    code, _, err = await run(base_env(tmp_path), tmp_path, "generate", "--model",
                             "veo-3-1-fast", "--prompt", "a fox", "--duration", "6",
                             "--out", "no.mp4")
    assert code == 2 and "8-second" in err  # APIXO's shape (the default) makes 8 s only
