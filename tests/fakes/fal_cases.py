"""Inputs for the fal.ai emulator's tests, endpoint by endpoint, from the endpoint table of
RESELLERS_BEYOND_APIXO.md: a good body for each endpoint with the video it should make, and
bodies against the rules with the field and pydantic-like error type each should name."""

from __future__ import annotations

from typing import Any

VEO_FAST = "fal-ai/veo3.1/fast"
HAILUO = "fal-ai/minimax/hailuo-2.3/standard/text-to-video"

# endpoint -> (body; "@WxH" stands for an image URL of that size, "data@WxH" for a data URI),
#             (seconds, (width, height)) of the video it makes
GOOD: dict[str, tuple[dict[str, Any], tuple[int, tuple[int, int]]]] = {
    "fal-ai/veo3.1": ({"prompt": "p", "duration": "4s", "aspect_ratio": "9:16",
                       "resolution": "1080p", "generate_audio": False, "negative_prompt": "n",
                       "seed": 7, "auto_fix": True, "safety_tolerance": "2"}, (4, (1080, 1920))),
    "fal-ai/veo3.1/fast": ({"prompt": "p"}, (8, (1280, 720))),
    "fal-ai/veo3.1/image-to-video": ({"prompt": "p", "image_url": "@1280x720",
                                      "duration": "6s"}, (6, (1280, 720))),
    "fal-ai/veo3.1/fast/image-to-video": ({"prompt": "p", "image_url": "@720x1280",
                                           "resolution": "4k", "aspect_ratio": "auto"},
                                          (8, (2160, 3840))),
    "fal-ai/veo3.1/first-last-frame-to-video": (
        {"prompt": "p", "first_frame_url": "@1280x720", "last_frame_url": "@1280x720",
         "aspect_ratio": "16:9"}, (8, (1280, 720))),
    "fal-ai/veo3.1/fast/first-last-frame-to-video": (
        {"prompt": "p", "first_frame_url": "@720x1280", "last_frame_url": "@720x1280",
         "generate_audio": True, "duration": "4s"}, (4, (720, 1280))),
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": (
        {"prompt": "p", "duration": "10", "aspect_ratio": "1:1", "negative_prompt": "n",
         "cfg_scale": 0.7}, (10, (1080, 1080))),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": (
        {"prompt": "p", "image_url": "@800x600", "tail_image_url": "@800x600"},
        (5, (1440, 1080))),
    "fal-ai/kling-video/v2.1/standard/image-to-video": (
        {"prompt": "p", "image_url": "@800x600", "cfg_scale": 0}, (5, (960, 720))),
    "fal-ai/kling-video/v2.1/pro/image-to-video": (
        {"prompt": "p", "image_url": "@800x600", "tail_image_url": "@800x600",
         "duration": "10"}, (10, (1440, 1080))),
    "fal-ai/kling-video/v2.1/master/image-to-video": (
        {"prompt": "p", "image_url": "@720x1280"}, (5, (1080, 1920))),
    "fal-ai/kling-video/v2.1/master/text-to-video": (
        {"prompt": "p", "aspect_ratio": "9:16"}, (5, (1080, 1920))),
    "fal-ai/wan-25-preview/text-to-video": (
        {"prompt": "p", "duration": "10", "resolution": "480p", "aspect_ratio": "16:9",
         "negative_prompt": "n", "enable_prompt_expansion": False, "seed": 1,
         "audio_url": "http://127.0.0.1:9/a.mp3"}, (10, (854, 480))),
    "fal-ai/wan-25-preview/text-to-video#default": ({"prompt": "p"}, (5, (1920, 1080))),
    "fal-ai/wan-25-preview/image-to-video": (
        {"prompt": "p", "image_url": "data@800x600", "resolution": "720p"}, (5, (960, 720))),
    "fal-ai/minimax/hailuo-2.3/standard/text-to-video": (
        {"prompt": "p", "duration": "10", "prompt_optimizer": False}, (10, (1366, 768))),
    "fal-ai/minimax/hailuo-2.3/standard/image-to-video": (
        {"prompt": "p", "image_url": "@600x900"}, (6, (768, 1152))),
    "fal-ai/minimax/hailuo-2.3/pro/text-to-video": ({"prompt": "p"}, (6, (1920, 1080))),
    "fal-ai/minimax/hailuo-2.3/pro/image-to-video": (
        {"prompt": "p", "image_url": "@1280x720", "prompt_optimizer": True}, (6, (1920, 1080))),
    "fal-ai/minimax/hailuo-2.3-fast/standard/image-to-video": (
        {"prompt": "p", "image_url": "@1280x720", "duration": "10"}, (10, (1366, 768))),
    "fal-ai/minimax/hailuo-2.3-fast/pro/image-to-video": (
        {"prompt": "p", "image_url": "@600x900"}, (6, (1080, 1620))),
}


BAD = [  # endpoint, body, the field named, the error type
    (VEO_FAST, {"prompt": "p", "duration": 8}, "duration", "literal_error"),
    (VEO_FAST, {"prompt": "p", "duration": "5s"}, "duration", "literal_error"),
    (VEO_FAST, {"prompt": "p", "safety_tolerance": 4}, "safety_tolerance", "literal_error"),
    (VEO_FAST, {"prompt": "p", "resolution": "480p"}, "resolution", "literal_error"),
    (VEO_FAST, {"prompt": "p", "generate_audio": "yes"}, "generate_audio", "bool_type"),
    (VEO_FAST, {"prompt": "p", "aspect_ratio": "auto"}, "aspect_ratio", "literal_error"),
    (VEO_FAST, {"prompt": "p", "image_url": "@1280x720"}, "image_url", "extra_forbidden"),
    (VEO_FAST, {"duration": "8s"}, "prompt", "missing"),
    ("fal-ai/veo3.1/image-to-video", {"prompt": "p"}, "image_url", "missing"),
    ("fal-ai/veo3.1/image-to-video", {"prompt": "p", "image_url": "@1280x720",
                                      "aspect_ratio": "1:1"}, "aspect_ratio", "literal_error"),
    ("fal-ai/veo3.1/first-last-frame-to-video", {"prompt": "p", "image_url": "@1280x720",
                                                 "last_frame_url": "@1280x720"},
     "image_url", "extra_forbidden"),
    ("fal-ai/veo3.1/first-last-frame-to-video", {"prompt": "p", "last_frame_url": "@9x9"},
     "first_frame_url", "missing"),
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", {"prompt": "p", "duration": 5},
     "duration", "literal_error"),
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", {"prompt": "p", "duration": "8"},
     "duration", "literal_error"),
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", {"prompt": "p", "seed": 1},
     "seed", "extra_forbidden"),
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", {"prompt": "p", "generate_audio": True},
     "generate_audio", "extra_forbidden"),
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", {"prompt": "p", "cfg_scale": 2},
     "cfg_scale", "value_error"),
    ("fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
     {"prompt": "p", "image_url": "@800x600", "aspect_ratio": "16:9"},
     "aspect_ratio", "extra_forbidden"),
    ("fal-ai/kling-video/v2.1/standard/image-to-video",
     {"prompt": "p", "image_url": "@800x600", "tail_image_url": "@800x600"},
     "tail_image_url", "extra_forbidden"),
    ("fal-ai/kling-video/v2.1/master/image-to-video",
     {"prompt": "p", "image_url": "@800x600", "tail_image_url": "@800x600"},
     "tail_image_url", "extra_forbidden"),
    ("fal-ai/kling-video/v2.1/pro/image-to-video", {"prompt": "p"}, "image_url", "missing"),
    ("fal-ai/wan-25-preview/text-to-video", {"prompt": "p", "duration": "6"},
     "duration", "literal_error"),
    ("fal-ai/wan-25-preview/text-to-video", {"prompt": "p", "negative_prompt": "n" * 501},
     "negative_prompt", "string_too_long"),
    ("fal-ai/wan-25-preview/image-to-video", {"prompt": "p" * 801, "image_url": "@800x600"},
     "prompt", "string_too_long"),
    ("fal-ai/wan-25-preview/image-to-video", {"prompt": "p", "image_url": "@800x600",
                                              "tail_image_url": "@800x600"},
     "tail_image_url", "extra_forbidden"),
    (HAILUO, {"prompt": "p", "duration": "5"}, "duration", "literal_error"),
    (HAILUO, {"prompt": "p", "duration": 6}, "duration", "literal_error"),
    (HAILUO, {"prompt": "p", "aspect_ratio": "16:9"}, "aspect_ratio", "extra_forbidden"),
    (HAILUO, {"prompt": "p", "negative_prompt": "n"}, "negative_prompt", "extra_forbidden"),
    ("fal-ai/minimax/hailuo-2.3/pro/text-to-video", {"prompt": "p", "duration": "6"},
     "duration", "extra_forbidden"),
    ("fal-ai/minimax/hailuo-2.3-fast/pro/image-to-video", {"prompt": "p"},
     "image_url", "missing"),
]
