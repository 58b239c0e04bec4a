"""The bad-input corpus, through the real bot and the fake Discord, on /video and /animate.

Every bad prompt and every unusable image gets a clear, private refusal and costs nothing:
no job row, no ledger row, no provider request. CMYK and 16-bit images are valid JPEG/PNG
files: by the image policy (bot/media/images.py) they are converted and accepted, at the
normal price, rather than refused.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.bot.support import World, png, world
from tests.fakes.apixo import FakeApixo

pytestmark = pytest.mark.timeout(120)

PROMPTS = [  # (prompt, what the refusal says)
    ("", "the prompt is empty"),
    ("   \n\t  ", "the prompt is empty"),
    ("x" * 10_001, "10,001 characters long"),
    ("a fox\x00in snow", "invisible control characters"),
    ("a fox\x1b[2Jin snow", "invisible control characters"),
    ("a fox\u200bin snow", "invisible control characters"),  # zero-width space
    ("a fox \u202ein snow", "invisible control characters"),  # right-to-left override
]


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def noise(width: int, height: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (640, 480), c) for c in ((200, 0, 0), (0, 0, 200))]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100,
                   loop=0)


def corpus() -> list[tuple[str, bytes, str, str, str]]:
    """(case, bytes, file name, content type, what the refusal says)"""
    jpeg = encoded(noise(800, 600), "JPEG", quality=90)
    return [
        ("truncated JPEG", jpeg[: len(jpeg) // 2], "cut.jpg", "image/jpeg",
         "damaged or incomplete"),
        ("truncated PNG", encoded(noise(640, 480), "PNG")[:20_000], "cut.png", "image/png",
         "damaged or incomplete"),
        ("zero bytes", b"", "empty.png", "image/png", "empty"),
        ("animated GIF", animated("GIF"), "loop.gif", "image/gif", "GIF images are not"),
        ("animated PNG", animated("PNG"), "loop.png", "image/png", "Animated images"),
        ("animated WebP", animated("WEBP"), "loop.webp", "image/webp", "Animated images"),
        ("huge in pixels, small in bytes", encoded(Image.new("L", (8000, 6000)), "PNG"),
         "bomb.png", "image/png", "8000×6000 pixels (48 MP)"),
        ("text named as an image", b"just some text, honest\n" * 20, "cat.jpg",
         "image/jpeg", "not a JPEG, PNG or WebP"),
        ("PDF named as an image", b"%PDF-1.7\n" + b"0" * 2000, "scan.png", "image/png",
         "PDF images are not supported"),
    ]


async def assert_cost_nothing(w: World, fake: FakeApixo, interaction: int, needle: str,
                              case: str) -> None:
    await w.refused(interaction, needle)
    assert await w.bot.store.jobs_for(w.guild, None) == [], case
    assert await w.bot.store.ledger_rows() == [], case
    assert fake.requests == [], case


def apixo_world(tmp_path: Path, fake: FakeApixo, **settings: object):  # type: ignore[no-untyped-def]
    return world(tmp_path, provider="apixo", apixo_api_key=fake.api_key,
                 apixo_base_url=fake.api_base, **settings)


async def test_bad_prompts_on_both_commands(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_world(tmp_path, fake) as w:
        image = w.fd.host_file(png(800, 600), "photo.png", "image/png")
        for prompt, needle in PROMPTS:
            # strict=False: Discord's own client would refuse a 10 001-character option
            # (it caps strings at 6000); a modified client could still send it.
            sent = await w.command("video", {"prompt": prompt}, strict=False)
            await assert_cost_nothing(w, fake, sent, needle, f"/video {prompt[:20]!r}")
            sent = await w.command("animate", {"prompt": prompt}, attachments={"image": image},
                                   strict=False)
            await assert_cost_nothing(w, fake, sent, needle, f"/animate {prompt[:20]!r}")


async def test_bad_images_are_refused_at_no_cost(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_world(tmp_path, fake) as w:
        for case, data, name, ctype, needle in corpus():
            url = w.fd.host_file(data, name, ctype)
            sent = await w.command("animate", {"prompt": "waves roll in"},
                                   attachments={"image": url})
            await assert_cost_nothing(w, fake, sent, needle, case)


@pytest.mark.parametrize("case", ["CMYK JPEG", "16-bit PNG"])
async def test_cmyk_and_16_bit_images_are_converted_and_charged_normally(
    tmp_path: Path, case: str
) -> None:
    if case == "CMYK JPEG":
        data, name = encoded(noise(900, 600).convert("CMYK"), "JPEG"), "print.jpg"
    else:
        gradient = Image.linear_gradient("L").resize((900, 600)).convert("I")
        data, name = encoded(gradient.point(lambda v: v * 257).convert("I;16"), "PNG"), "deep.png"
    assert Image.open(io.BytesIO(data)).mode in ("CMYK", "I;16")
    async with (
        FakeApixo() as fake,
        apixo_world(tmp_path, fake, public_base_url="http://127.0.0.1:1") as w,
    ):
        # A converted image is served to the provider from the bot's webhook server
        # (whose real port is known only once it listens).
        w.bot.webhook.public_base_url = f"http://127.0.0.1:{w.bot.webhook.port}"
        url = w.fd.host_file(data, name, "image/jpeg" if name.endswith("jpg") else "image/png")
        await w.command("animate", {"prompt": "slow zoom", "duration": 4},
                        attachments={"image": url})
        await w.wait_videos(1)
        (job,) = await w.settled(1)
        assert job.state.value == "delivered" and job.seconds == 4
        assert await w.bot.store.ledger_balance(job.id) == 4
        (task,) = fake.tasks.values()
        assert task.image_info is not None  # the provider decoded what it was sent
        assert task.image_info.format in ("JPEG", "PNG")
        assert (task.image_info.width, task.image_info.height) == (900, 600)
