"""Input schemas for the fal.ai and Replicate emulators, written from the reseller digest
(RESELLERS_BEYOND_APIXO.md: each endpoint's or model's fields, types, values and what is
required), never from the bot's catalog. ``check`` returns the problems as the resellers
report them: a field, a message and a type, like pydantic's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .media import is_http_url, is_int


@dataclass(frozen=True)
class Rule:
    kind: str  # str | choice | bool | int | number | url | urls
    values: tuple[Any, ...] = ()  # choice: the allowed values
    low: float = 0
    high: float = 10_000  # str: max length; int/number: bounds; urls: most items


def text(max_len: int = 10_000) -> Rule:
    return Rule("str", high=max_len)


def choice(*values: Any) -> Rule:
    return Rule("choice", values)


def integer(low: int, high: int) -> Rule:
    return Rule("int", low=low, high=high)


BOOL, URL, NUMBER01 = Rule("bool"), Rule("url"), Rule("number", low=0, high=1)


@dataclass(frozen=True)
class Schema:
    fields: dict[str, Rule]
    required: frozenset[str] = frozenset({"prompt"})
    images: tuple[str, ...] = ()  # the fields holding image URLs (fetched and decoded)
    extra: dict[str, Any] = field(default_factory=dict)  # the emulator's own notes

    def with_(self, required: tuple[str, ...] = (), images: tuple[str, ...] = (),
              drop: tuple[str, ...] = (), **fields: Rule) -> Schema:
        kept = {k: v for k, v in self.fields.items() if k not in drop}
        return Schema({**kept, **fields}, self.required | set(required),
                      self.images + images)


def _bad(name: str, message: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": message, "type": kind}


def check(schema: Schema, body: Any) -> list[dict[str, Any]]:
    """Problems with ``body`` (an empty list when it follows the schema)."""
    if not isinstance(body, dict):
        return [_bad("body", "the body must be a JSON object", "type_error")]
    problems = [_bad(name, "field required", "missing")
                for name in sorted(schema.required) if name not in body]
    for name, value in body.items():
        rule = schema.fields.get(name)
        if rule is None:
            problems.append(_bad(name, "extra fields not permitted", "extra_forbidden"))
            continue
        message = _problem(rule, value)
        if message is not None:
            problems.append(_bad(name, message, "value_error"))
    return problems


def _problem(rule: Rule, value: Any) -> str | None:
    if rule.kind == "str":
        ok = isinstance(value, str) and len(value) <= rule.high
        return None if ok else f"must be a string of at most {int(rule.high)} characters"
    if rule.kind == "choice":
        # Types matter: "8s" is not 8, and 5 is not "5".
        ok = any(value == v and type(value) is type(v) for v in rule.values)
        return None if ok else f"must be one of {', '.join(map(repr, rule.values))}"
    if rule.kind == "bool":
        return None if isinstance(value, bool) else "must be a boolean"
    if rule.kind == "int":
        ok = is_int(value) and rule.low <= value <= rule.high
        return None if ok else f"must be an integer from {int(rule.low)} to {int(rule.high)}"
    if rule.kind == "number":
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and rule.low <= value <= rule.high)
        return None if ok else f"must be a number from {rule.low} to {rule.high}"
    if rule.kind == "url":
        return None if is_http_url(value) else "must be an http(s) URL"
    if rule.kind == "urls":
        ok = isinstance(value, list) and 1 <= len(value) <= rule.high and all(
            is_http_url(v) for v in value)
        return None if ok else f"must be a list of 1-{int(rule.high)} http(s) URLs"
    raise AssertionError(rule.kind)


# -- fal.ai endpoints (digest section 1) ----------------------------------------------------

_VEO = Schema({
    "prompt": text(), "duration": choice("4s", "6s", "8s"), "aspect_ratio": choice("16:9", "9:16"),
    "resolution": choice("720p", "1080p", "4k"), "generate_audio": BOOL,
    "negative_prompt": text(), "seed": integer(0, 2**32), "auto_fix": BOOL,
    "safety_tolerance": choice("1", "2", "3", "4", "5", "6"),
})
_VEO_IMAGE = _VEO.with_(required=("image_url",), images=("image_url",), image_url=URL,
                        aspect_ratio=choice("auto", "16:9", "9:16"))
_VEO_FRAMES = _VEO.with_(required=("first_frame_url", "last_frame_url"),
                         images=("first_frame_url", "last_frame_url"), first_frame_url=URL,
                         last_frame_url=URL, aspect_ratio=choice("auto", "16:9", "9:16"))
_KLING = Schema({"prompt": text(2_500), "duration": choice("5", "10"),
                 "aspect_ratio": choice("16:9", "9:16", "1:1"), "negative_prompt": text(2_500),
                 "cfg_scale": NUMBER01})
_KLING_IMAGE = _KLING.with_(required=("image_url",), images=("image_url",), drop=("aspect_ratio",),
                            image_url=URL)
_KLING_TAIL = _KLING_IMAGE.with_(images=("tail_image_url",), tail_image_url=URL)
_WAN = Schema({"prompt": text(), "negative_prompt": text(500), "duration": choice("5", "10"),
               "resolution": choice("480p", "720p", "1080p"),
               "aspect_ratio": choice("16:9", "9:16", "1:1"), "audio_url": URL,
               "enable_prompt_expansion": BOOL, "seed": integer(0, 2**32)})
_WAN_IMAGE = _WAN.with_(required=("image_url",), images=("image_url",), drop=("aspect_ratio",),
                        prompt=text(800), image_url=URL)
_HAILUO = Schema({"prompt": text(), "prompt_optimizer": BOOL, "duration": choice("6", "10")})
_HAILUO_PRO = _HAILUO.with_(drop=("duration",))


def _image(schema: Schema) -> Schema:
    return schema.with_(required=("image_url",), images=("image_url",), image_url=URL)


FAL_ENDPOINTS: dict[str, Schema] = {
    **{f"fal-ai/veo3.1{tier}": _VEO for tier in ("", "/fast")},
    **{f"fal-ai/veo3.1{tier}/image-to-video": _VEO_IMAGE for tier in ("", "/fast")},
    **{f"fal-ai/veo3.1{tier}/first-last-frame-to-video": _VEO_FRAMES for tier in ("", "/fast")},
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": _KLING,
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": _KLING_TAIL,
    "fal-ai/kling-video/v2.1/standard/image-to-video": _KLING_IMAGE,
    "fal-ai/kling-video/v2.1/pro/image-to-video": _KLING_TAIL,
    "fal-ai/kling-video/v2.1/master/image-to-video": _KLING_IMAGE,
    "fal-ai/kling-video/v2.1/master/text-to-video": _KLING,
    "fal-ai/wan-25-preview/text-to-video": _WAN,
    "fal-ai/wan-25-preview/image-to-video": _WAN_IMAGE,
    "fal-ai/minimax/hailuo-2.3/standard/text-to-video": _HAILUO,
    "fal-ai/minimax/hailuo-2.3/standard/image-to-video": _image(_HAILUO),
    "fal-ai/minimax/hailuo-2.3/pro/text-to-video": _HAILUO_PRO,
    "fal-ai/minimax/hailuo-2.3/pro/image-to-video": _image(_HAILUO_PRO),
    "fal-ai/minimax/hailuo-2.3-fast/standard/image-to-video": _image(_HAILUO),
    "fal-ai/minimax/hailuo-2.3-fast/pro/image-to-video": _image(_HAILUO_PRO),
}


# -- Replicate models (digest section 2) ----------------------------------------------------

_R_VEO = Schema({"prompt": text(), "image": URL, "last_frame": URL,
                 "reference_images": Rule("urls", high=3),
                 "aspect_ratio": choice("16:9", "9:16"), "duration": choice(4, 6, 8),
                 "resolution": choice("720p", "1080p"), "negative_prompt": text(),
                 "generate_audio": BOOL, "seed": integer(0, 2**32)},
                images=("image", "last_frame"))
_R_KLING = Schema({"prompt": text(2_500), "start_image": URL, "image": URL, "end_image": URL,
                   "aspect_ratio": choice("16:9", "9:16", "1:1"), "duration": choice(5, 10),
                   "negative_prompt": text(2_500)},
                  images=("start_image", "image", "end_image"))
_R_WAN = Schema({"prompt": text(), "duration": choice(5, 10),
                 "resolution": choice("480p", "720p", "1080p"), "negative_prompt": text(500),
                 "audio": URL, "enable_prompt_expansion": BOOL, "seed": integer(0, 2**32)})
_R_HAILUO = Schema({"prompt": text(), "first_frame_image": URL, "duration": choice(6, 10),
                    "resolution": choice("768p", "1080p"), "prompt_optimizer": BOOL},
                   images=("first_frame_image",))

REPLICATE_MODELS: dict[str, Schema] = {
    "google/veo-3.1": _R_VEO,
    "google/veo-3.1-fast": _R_VEO.with_(drop=("reference_images",)),
    "kwaivgi/kling-v2.5-turbo-pro": _R_KLING,
    "kwaivgi/kling-v2.1": _R_KLING.with_(required=("start_image",), drop=("image",
                                                                          "aspect_ratio"),
                                         mode=choice("standard", "pro")),
    "wan-video/wan-2.5-i2v": _R_WAN.with_(required=("image",), images=("image",), image=URL,
                                          drop=("prompt",), prompt=text(800)),
    "wan-video/wan-2.5-t2v": _R_WAN.with_(size=choice("1280*720", "720*1280", "832*480",
                                                      "480*832", "1920*1080", "1080*1920")),
    "minimax/hailuo-2.3": _R_HAILUO,
    "minimax/hailuo-2.3-fast": _R_HAILUO.with_(required=("first_frame_image",)),
}


def replicate_rules(model: str, inp: dict[str, Any]) -> str | None:
    """Rules across fields, as the model pages state them."""
    if model == "kwaivgi/kling-v2.1" and "end_image" in inp and inp.get("mode") != "pro":
        return "end_image needs mode pro"
    if model.startswith("minimax/hailuo-2.3") and inp.get("resolution") == "1080p" \
            and inp.get("duration", 6) != 6:
        return "1080p videos are 6 seconds long"
    return None
