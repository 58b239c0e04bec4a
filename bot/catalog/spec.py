"""What a catalog entry says about one model: its request shape, limits, images and price.

Each field is data the adapters read; nothing outside the catalog may assume a model's
name, lengths, aspects or input fields. An APIXO model's ``input`` object is built from:

- ``shapes``: the request shapes it takes (prompt alone, a start frame, start and end
  frames) and, for each, the fixed fields that select it (``mode``, ``generationType``);
- ``durations`` with ``duration_field``/``duration_type`` (one length and no field: the
  model makes that fixed length);
- ``text_fields``/``image_fields``: the fields that express the orientation per mode
  (``aspect_ratio: 16:9`` or ``landscape``, ``size: 1280*720``); none: the video follows
  the image;
- ``image_field`` (and ``end_image_field``), ``negative_prompt_field``, ``seed_field``,
  ``audio_field`` (sound on or off, where members may choose);
- ``input_extra`` (a tier such as ``mode: fast``, a ``resolution``) and ``body_extra``.

Resellers that sell one model on several endpoints (fal.ai: text, image and
first/last-frame endpoints) name them per shape in ``endpoints``, with the image fields of
a shape that spells them differently in ``shape_image_fields``. Prices are ``Price`` data
(``bot.catalog.pricing``): ``price``, ``audio_price`` with sound on, ``shape_prices`` for
a shape priced apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.catalog.pricing import Price


class Mode(StrEnum):
    TEXT = "text-to-video"
    IMAGE = "image-to-video"


class Shape(StrEnum):
    """Which images go with the prompt."""

    TEXT = "text"  # the prompt alone
    IMAGE = "image"  # a start frame
    FRAMES = "frames"  # a start frame and an end frame

    @property
    def mode(self) -> Mode:
        return Mode.TEXT if self is Shape.TEXT else Mode.IMAGE


class Orientation(StrEnum):
    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"


class ImageRules(BaseModel):
    """What a model accepts as a source image (start or end frame)."""

    model_config = ConfigDict(frozen=True)

    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    max_bytes: int = 10 * 1024 * 1024
    min_short_side: int = 300
    max_side: int | None = None  # longest side allowed; larger images are scaled down
    min_aspect: float = 2 / 5
    max_aspect: float = 5 / 2
    # True: the aspect must lie strictly between min_aspect and max_aspect.
    aspect_exclusive: bool = False
    alpha: bool = True  # False: transparent pixels are flattened (e.g. "PNG without alpha")
    # When set, the image must be exactly one of these (width, height) sizes.
    exact_sizes: tuple[tuple[int, int], ...] | None = None
    # "url": the provider fetches the image from a URL; "data_uri": it is inlined.
    transport: Literal["url", "data_uri"] = "url"


_DEFAULT_SHAPES: Mapping[Shape, Mapping[str, Any]] = {Shape.TEXT: {}, Shape.IMAGE: {}}


class ModelSpec(BaseModel):
    """One model of one provider."""

    model_config = ConfigDict(frozen=True)

    provider: str
    id: str  # catalog id, what members pick and MODEL names
    api_model: str  # the name the provider's API wants
    label: str
    # Retired models are not offered to members; an owner may still set MODEL to one.
    retired: bool = False
    default: bool = False  # the provider's model when MODEL is unset
    # The request shapes the model takes, each with the input fields that select it.
    shapes: Mapping[Shape, Mapping[str, Any]] = Field(default_factory=lambda: _DEFAULT_SHAPES)
    durations: tuple[int, ...] = (4, 8, 12)
    # None: the model makes its one length and takes no duration field.
    duration_field: str | None = "duration"
    duration_type: Literal["int", "str"] = "int"
    duration_suffix: str = ""  # a string duration's unit, e.g. "s" for "8s"
    orientations: tuple[Orientation, ...] = (Orientation.LANDSCAPE, Orientation.PORTRAIT)
    # Request fields that express the orientation, per mode, exactly as the API wants them.
    text_fields: Mapping[Orientation, Mapping[str, Any]] = Field(default_factory=dict)
    image_fields: Mapping[Orientation, Mapping[str, Any]] = Field(default_factory=dict)
    # True: an animated image keeps its own shape (no orientation is sent or offered).
    image_keeps_shape: bool = False
    # Per shape: the endpoint (or model) that takes it, when it is not ``api_model``.
    endpoints: Mapping[Shape, str] = Field(default_factory=dict)
    # Fixed fields: top level of the body, and inside the input object (APIXO).
    body_extra: Mapping[str, Any] = Field(default_factory=dict)
    input_extra: Mapping[str, Any] = Field(default_factory=dict)
    prompt_max: int = 10_000
    negative_prompt_max: int | None = None  # None: no negative prompt
    negative_prompt_field: str = "negative_prompt"
    seed_field: str | None = None  # None: no seed
    seed_max: int = 2**31 - 1
    # Where the images go: a list field (start frame first, end frame second) or, with
    # image_list False, one URL; end_image_field names a separate end-frame field.
    image_field: str = "image_urls"
    image_list: bool = True
    end_image_field: str | None = None
    # Per shape: (start frame field, end frame field) where a shape names them differently.
    shape_image_fields: Mapping[Shape, tuple[str, str | None]] = Field(default_factory=dict)
    # The boolean input that turns sound on; None: members cannot choose (the model makes
    # sound always, never, or as its reseller decides).
    audio_field: str | None = None
    image: ImageRules = ImageRules()
    # The list price; None when the reseller publishes no figure (then MODEL_PRICES in the
    # settings supplies one, or the cost shows as unknown and a spend cap refuses it).
    price: Price | None = None
    audio_price: Price | None = None  # with sound on, when it costs more
    shape_prices: Mapping[Shape, Price] = Field(default_factory=dict)
    requests_per_minute: int | None = None
    max_concurrent: int = 10
    # The provider's polling advice: first check after N s (per duration), then every M s.
    poll_first_s: Mapping[int, float] = Field(default_factory=dict)
    poll_interval_s: float = 10.0
    # Usual generation time in seconds (low, high) per duration, shown to members.
    typical_s: Mapping[int, tuple[int, int]] = Field(
        default_factory=lambda: {4: (120, 240), 8: (180, 300), 12: (240, 360)}
    )
    result_ttl_s: int = 24 * 3600

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    @property
    def modes(self) -> tuple[Mode, ...]:
        return tuple(dict.fromkeys(shape.mode for shape in self.shapes))

    @property
    def fixed_length(self) -> int | None:
        """The one length this model makes, or None when members choose."""
        return self.durations[0] if len(self.durations) == 1 else None

    @property
    def takes_end_frame(self) -> bool:
        return Shape.FRAMES in self.shapes

    @property
    def takes_negative_prompt(self) -> bool:
        return self.negative_prompt_max is not None

    @property
    def takes_seed(self) -> bool:
        return self.seed_field is not None

    @property
    def takes_audio(self) -> bool:
        return self.audio_field is not None

    def endpoint_for(self, shape: Shape) -> str:
        return self.endpoints.get(shape, self.api_model)

    def image_fields_for(self, shape: Shape) -> tuple[str, str | None]:
        return self.shape_image_fields.get(shape, (self.image_field, self.end_image_field))

    def duration_value(self, length: int) -> int | str:
        """A length as the API's duration field wants it: 8, "8" or "8s"."""
        return f"{length}{self.duration_suffix}" if self.duration_type == "str" else length

    def price_for(self, shape: Shape, audio: bool) -> Price | None:
        """The catalog's price of a request of this shape, with sound on or off."""
        if audio and self.audio_price is not None:
            return self.audio_price
        return self.shape_prices.get(shape, self.price)

    def length_for(self, asked: int | None) -> int:
        """Seconds of video a request makes: a fixed-length model makes its length."""
        if self.fixed_length is not None or asked is None:
            return self.durations[0]
        return asked

    def orientation_fields(self, mode: Mode) -> Mapping[Orientation, Mapping[str, Any]]:
        return self.text_fields if mode is Mode.TEXT else self.image_fields

    def orientations_for(self, mode: Mode) -> tuple[Orientation, ...]:
        """Orientations a member may ask for; empty: the video follows the image."""
        if mode is Mode.IMAGE and self.image_keeps_shape:
            return ()
        return self.orientations

    def fields_for(self, mode: Mode, orientation: Orientation) -> dict[str, Any]:
        return dict(self.orientation_fields(mode).get(orientation, {}))

    def first_poll_after(self, duration: int) -> float:
        return self.poll_first_s.get(duration, min(self.poll_first_s.values(), default=10.0))

    def describe_lengths(self) -> str:
        """'8-second videos' or 'videos of 5 or 10 seconds'."""
        if self.fixed_length is not None:
            return f"{self.fixed_length}-second videos"
        *head, last = [str(d) for d in sorted(self.durations)]
        return f"videos of {', '.join(head) + ' or ' if head else ''}{last} seconds"
