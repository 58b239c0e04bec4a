from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import Orientation
from bot.media.testcard import make_test_card
from tests.fakes.media import write_noise_video


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
