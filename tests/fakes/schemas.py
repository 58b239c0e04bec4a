"""Input rules for the fal.ai and Replicate emulators: the field kinds, a schema per endpoint
or model, and ``check``, which reports problems the way pydantic does (a location, a message
and a type). The tables themselves, written from RESELLERS_BEYOND_APIXO.md (never from the
bot's catalog), are in ``fal_models`` and ``replicate_models``; the frame sizes both use
are here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .media import MAX_IMAGE_BYTES, ImageInfo, is_http_url, is_int


@dataclass(frozen=True)
class Rule:
    kind: str  # str | choice | bool | int | number | url | image | images
    values: tuple[Any, ...] = ()  # choice: the allowed values
    low: float = 0
    high: float = 10_000  # str: max length; int/number: bounds; images: most items
    data_uri: bool = False  # image: a data:image/...;base64 URI is taken too


def text(max_len: int = 10_000) -> Rule:
    return Rule("str", high=max_len)


def choice(*values: Any) -> Rule:
    """One of ``values``, of the same JSON type: "8s" is not 8, and 5 is not "5"."""
    return Rule("choice", values)


def integer(low: int, high: int) -> Rule:
    return Rule("int", low=low, high=high)


def images(most: int) -> Rule:
    return Rule("images", high=most)


BOOL, URL, NUMBER01 = Rule("bool"), Rule("url"), Rule("number", low=0, high=1)
IMAGE = Rule("image")  # an http(s) URL of an image: fetched and decoded
IMAGE_OR_DATA = Rule("image", data_uri=True)
SEED = integer(0, 2**32 - 1)


@dataclass(frozen=True)
class Schema:
    fields: dict[str, Rule]
    required: frozenset[str] = frozenset({"prompt"})
    max_image_bytes: int = MAX_IMAGE_BYTES

    def with_(self, required: tuple[str, ...] = (), drop: tuple[str, ...] = (),
              **fields: Rule) -> Schema:
        kept = {k: v for k, v in self.fields.items() if k not in drop}
        return Schema({**kept, **fields}, (self.required - set(drop)) | set(required),
                      self.max_image_bytes)

    def image_refs(self, body: dict[str, Any]) -> list[tuple[str, str, bool]]:
        """(field, reference, data URI allowed) of every image in a checked body."""
        found = []
        for name, rule in self.fields.items():
            if name not in body:
                continue
            if rule.kind == "image":
                found.append((name, body[name], rule.data_uri))
            elif rule.kind == "images":
                found += [(f"{name}.{i}", ref, False) for i, ref in enumerate(body[name])]
        return found


def problem(name: str, message: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": message, "type": kind}


def check(schema: Schema, body: Any) -> list[dict[str, Any]]:
    """Problems with ``body`` (an empty list when it follows the schema)."""
    if not isinstance(body, dict):
        return [problem("body", "Input should be a valid dictionary", "dict_type")]
    found = [problem(name, "Field required", "missing")
             for name in sorted(schema.required) if name not in body]
    for name, value in body.items():
        rule = schema.fields.get(name)
        if rule is None:
            found.append(problem(name, "Extra inputs are not permitted", "extra_forbidden"))
            continue
        wrong = _problem(rule, value)
        if wrong is not None:
            found.append(problem(name, *wrong))
    return found


def _problem(rule: Rule, value: Any) -> tuple[str, str] | None:
    if rule.kind == "str":
        if not isinstance(value, str):
            return "Input should be a valid string", "string_type"
        return None if len(value) <= rule.high else (
            f"String should have at most {int(rule.high)} characters", "string_too_long")
    if rule.kind == "choice":
        ok = any(value == v and type(value) is type(v) for v in rule.values)
        return None if ok else (
            f"Input should be {' or '.join(map(repr, rule.values))}", "literal_error")
    if rule.kind == "bool":
        return None if isinstance(value, bool) else ("Input should be a valid boolean",
                                                     "bool_type")
    if rule.kind == "int":
        if not is_int(value):
            return "Input should be a valid integer", "int_type"
        return None if rule.low <= value <= rule.high else (
            f"Input should be from {int(rule.low)} to {int(rule.high)}", "value_error")
    if rule.kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "Input should be a valid number", "float_type"
        return None if rule.low <= value <= rule.high else (
            f"Input should be from {rule.low:g} to {rule.high:g}", "value_error")
    if rule.kind in ("url", "image"):
        if is_http_url(value) or (rule.data_uri and isinstance(value, str)
                                  and value.startswith("data:image/")):
            return None
        accepted = "an http(s) URL or a data URI" if rule.data_uri else "an http(s) URL"
        return f"Input should be {accepted}", "url_parsing"
    if rule.kind == "images":
        ok = isinstance(value, list) and 1 <= len(value) <= rule.high and all(
            is_http_url(v) for v in value)
        return None if ok else (f"Input should be a list of 1-{int(rule.high)} http(s) URLs",
                                "list_type")
    raise AssertionError(rule.kind)


# -- the frames the models make ---------------------------------------------------------------
SHORT_SIDE = {"480p": 480, "720p": 720, "768p": 768, "1080p": 1080, "4k": 2160}
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}


def frame(resolution: str, aspect: str | tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a video at ``resolution`` ("720p": the short side) and ``aspect``
    (a ratio name, or (w, h) such as an image's own size); even numbers."""
    w, h = ASPECTS[aspect] if isinstance(aspect, str) else aspect
    short = SHORT_SIDE[resolution]
    width, height = (round(short * w / h), short) if w >= h else (short, round(short * h / w))
    return width + width % 2, height + height % 2


def image_aspect(image: ImageInfo | None, default: str = "16:9") -> tuple[int, int]:
    """The image's own aspect (a video that follows its first frame)."""
    return (image.width, image.height) if image is not None else ASPECTS[default]


def image_orientation(image: ImageInfo | None, default: str = "16:9") -> str:
    """16:9 or 9:16, whichever the image is nearer ("auto" on models that crop to those)."""
    if image is None:
        return default
    return "16:9" if image.width >= image.height else "9:16"
