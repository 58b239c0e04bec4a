from __future__ import annotations

import os
import random
from array import array
from fractions import Fraction
from pathlib import Path

import av
import pytest

from bot.catalog import Orientation
from bot.media.testcard import make_test_card


def write_noise_video(
    path: Path, *, seconds: int = 4, fps: int = 12, size: tuple[int, int] = (320, 240)
) -> None:
    """A hard-to-compress H.264 + AAC MP4 (random pixels and hiss, near-lossless)."""
    width, height = size
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "8"}
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        audio.bit_rate = 192_000
        for index in range(seconds * fps):
            frame = av.VideoFrame.from_bytes(
                os.urandom(width * height * 4), width, height, format="rgba"
            ).reformat(format="yuv420p")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, seconds * 48000, 1024):
            chunk = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in chunk.planes:
                hiss = array("f", (random.uniform(-0.3, 0.3) for _ in range(1024)))
                plane.update(hiss.tobytes())
            chunk.sample_rate = 48000
            chunk.pts = start
            chunk.time_base = Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))


@pytest.fixture(scope="session")
def card_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cards") / "card.mp4"
    make_test_card(
        path,
        prompt="a red fox in the snow",
        duration_s=4,
        orientation=Orientation.LANDSCAPE,
        audio=True,
    )
    return path


@pytest.fixture(scope="session")
def noise_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("noise") / "noise.mp4"
    write_noise_video(path)
    return path
