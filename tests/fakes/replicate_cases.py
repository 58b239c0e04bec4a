"""Inputs for the Replicate emulator's tests, model by model, from the model table of
RESELLERS_BEYOND_APIXO.md: a good input for each model with the video it should make, and
inputs against the rules with the field and error type each should name."""

from __future__ import annotations

from typing import Any

VEO = "google/veo-3.1"
HAILUO = "minimax/hailuo-2.3"
KLING_21 = "kwaivgi/kling-v2.1"

# model -> input ("@WxH" stands for an image URL of that size), (seconds, (width, height))
GOOD: dict[str, tuple[dict[str, Any], tuple[int, tuple[int, int]]]] = {
    "google/veo-3.1": ({"prompt": "p", "image": "@720x1280", "last_frame": "@720x1280",
                        "duration": 6, "negative_prompt": "n", "generate_audio": True,
                        "seed": 3}, (6, (1080, 1920))),
    "google/veo-3.1#references": ({"prompt": "p", "reference_images": ["@800x600"] * 3,
                                   "aspect_ratio": "16:9", "duration": 8}, (8, (1920, 1080))),
    "google/veo-3.1#default": ({"prompt": "p"}, (8, (1920, 1080))),
    "google/veo-3.1-fast": ({"prompt": "p", "aspect_ratio": "9:16", "duration": 4},
                            (4, (720, 1280))),
    "kwaivgi/kling-v2.5-turbo-pro": ({"prompt": "p", "start_image": "@800x600",
                                      "end_image": "@800x600", "duration": 10,
                                      "aspect_ratio": "9:16", "negative_prompt": "n"},
                                     (10, (1440, 1080))),
    "kwaivgi/kling-v2.5-turbo-pro#text": ({"prompt": "p", "aspect_ratio": "1:1"},
                                          (5, (1080, 1080))),
    "kwaivgi/kling-v2.1": ({"prompt": "p", "start_image": "@800x600"}, (5, (960, 720))),
    "kwaivgi/kling-v2.1#pro": ({"prompt": "p", "start_image": "@720x1280", "mode": "pro",
                                "end_image": "@720x1280", "duration": 10},
                               (10, (1080, 1920))),
    "wan-video/wan-2.5-i2v": ({"prompt": "p", "image": "@800x600", "duration": 10,
                               "resolution": "480p", "negative_prompt": "n", "seed": 9,
                               "enable_prompt_expansion": False,
                               "audio": "http://127.0.0.1:9/a.wav"}, (10, (640, 480))),
    "wan-video/wan-2.5-t2v": ({"prompt": "p", "resolution": "1080p"}, (5, (1920, 1080))),
    "wan-video/wan-2.5-t2v#size": ({"prompt": "p", "size": "720*1280"}, (5, (720, 1280))),
    "minimax/hailuo-2.3": ({"prompt": "p", "duration": 10, "resolution": "768p",
                            "prompt_optimizer": False}, (10, (1366, 768))),
    "minimax/hailuo-2.3#pro": ({"prompt": "p", "first_frame_image": "@600x900",
                                "resolution": "1080p", "duration": 6}, (6, (1080, 1620))),
    "minimax/hailuo-2.3-fast": ({"prompt": "p", "first_frame_image": "@600x900"},
                                (6, (768, 1152))),
}


BAD = [  # model, input, the field named, the error type
    (VEO, {"prompt": "p", "duration": "8"}, "duration", "enum"),
    (VEO, {"prompt": "p", "duration": 5}, "duration", "enum"),
    (VEO, {"prompt": "p", "resolution": "4k"}, "resolution", "enum"),
    (VEO, {"prompt": "p", "image_url": "@800x600"}, "image_url",
     "additional_property_not_allowed"),
    (VEO, {"duration": 8}, "prompt", "required"),
    (VEO, {"prompt": "p", "reference_images": ["@800x600"], "aspect_ratio": "9:16"},
     "reference_images", "invalid_type"),
    ("google/veo-3.1-fast", {"prompt": "p", "reference_images": ["@800x600"]},
     "reference_images", "additional_property_not_allowed"),
    ("kwaivgi/kling-v2.5-turbo-pro", {"prompt": "p", "duration": "5"}, "duration", "enum"),
    ("kwaivgi/kling-v2.5-turbo-pro", {"prompt": "p", "seed": 4}, "seed",
     "additional_property_not_allowed"),
    (KLING_21, {"prompt": "p", "duration": 5}, "start_image", "required"),
    (KLING_21, {"prompt": "p", "start_image": "@800x600", "end_image": "@800x600"},
     "end_image", "invalid_type"),
    (KLING_21, {"prompt": "p", "start_image": "@800x600", "mode": "master"}, "mode", "enum"),
    (KLING_21, {"prompt": "p", "start_image": "@800x600", "aspect_ratio": "16:9"},
     "aspect_ratio", "additional_property_not_allowed"),
    ("wan-video/wan-2.5-i2v", {"prompt": "p"}, "image", "required"),
    ("wan-video/wan-2.5-i2v", {"prompt": "p", "image": "@800x600", "duration": 8},
     "duration", "enum"),
    ("wan-video/wan-2.5-t2v", {"prompt": "p", "image": "@800x600"}, "image",
     "additional_property_not_allowed"),
    ("wan-video/wan-2.5-t2v", {"prompt": "p", "size": "1024*1024"}, "size", "enum"),
    (HAILUO, {"prompt": "p", "duration": 10, "resolution": "1080p"}, "duration",
     "invalid_type"),
    (HAILUO, {"prompt": "p", "duration": "6"}, "duration", "enum"),
    (HAILUO, {"prompt": "p", "resolution": "720p"}, "resolution", "enum"),
    (HAILUO, {"prompt": "p", "image": "@800x600"}, "image", "additional_property_not_allowed"),
    ("minimax/hailuo-2.3-fast", {"prompt": "p"}, "first_frame_image", "required"),
]
