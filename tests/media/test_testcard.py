from __future__ import annotations

import struct
import time
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.catalog import Orientation
from bot.media.testcard import make_test_card
from bot.media.video import probe_mp4


def frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p"
        return [frame.to_image() for frame in container.decode(stream)]


def top_level_boxes(path: Path) -> list[bytes]:
    data = path.read_bytes()
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        kinds.append(kind)
        pos += size
    return kinds


@pytest.mark.parametrize(
    ("orientation", "size"),
    [(Orientation.LANDSCAPE, (640, 360)), (Orientation.PORTRAIT, (360, 640))],
)
def test_card_is_a_real_h264_mp4(
    tmp_path: Path, orientation: Orientation, size: tuple[int, int]
) -> None:
    path = tmp_path / "card.mp4"
    make_test_card(path, prompt="a cat playing the piano", duration_s=4, orientation=orientation)
    info = probe_mp4(path)
    assert (info.width, info.height) == size
    assert info.video_codec == "h264" and not info.has_audio
    assert info.duration_s == pytest.approx(4, abs=0.1)
    pictures = frames(path)
    assert len(pictures) == 4 * 12
    # It moves: the first and last frames differ (progress bar, clock, sweeping dot).
    assert pictures[0].tobytes() != pictures[-1].tobytes()
    # The banner across the top is the sandbox warning's orange.
    red, green, blue = pictures[0].convert("RGB").getpixel((size[0] - 4, 4))  # type: ignore[misc]
    assert red > 180 and 110 < green < 200 and blue < 80
    # faststart: the index (moov) comes before the media data (mdat).
    boxes = top_level_boxes(path)
    assert boxes.index(b"moov") < boxes.index(b"mdat")
    assert [p.name for p in tmp_path.iterdir()] == ["card.mp4"]


def test_twelve_second_card_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "card.mp4"
    started = time.monotonic()
    make_test_card(
        path, prompt="speed", duration_s=12, orientation=Orientation.LANDSCAPE, audio=True
    )
    assert time.monotonic() - started < 4
    info = probe_mp4(path)
    assert info.has_audio and info.duration_s == pytest.approx(12, abs=0.1)
    assert info.size_bytes < 1_000_000


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "word " * 2000,
        "x" * 5000,
        "Emoji 🎬 and CJK 猫 and an em dash — and\nnew\nlines",
    ],
    ids=["empty", "many-words", "one-huge-word", "unicode"],
)
def test_awkward_prompts_render(tmp_path: Path, prompt: str) -> None:
    path = tmp_path / "card.mp4"
    make_test_card(path, prompt=prompt, duration_s=1, orientation=Orientation.PORTRAIT, fps=4)
    assert len(frames(path)) == 4


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_test_card(
            tmp_path / "x.mp4", prompt="p", duration_s=0, orientation=Orientation.LANDSCAPE
        )
    assert not list(tmp_path.iterdir())
