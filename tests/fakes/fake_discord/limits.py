"""Rate-limit headers, 429 bodies, the edit rate limiter and injected failures.

discord.py (http.py ``HTTPClient.request``) only honours a 429 that carries a ``Via`` header
and a JSON body ``{"message", "retry_after", "global"}``; without ``Via`` it assumes a
Cloudflare ban and raises. 500/502/504 are retried after 1 + 2*try seconds. Successful
responses carry X-RateLimit-* headers with plenty remaining so the client never waits,
except on edits while ``EditLimiter`` is on, where the counts are real.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass

from .bodies import ApiError

VIA = "1.1 google"


def bucket_hash(key: str) -> str:
    return hashlib.md5(key.encode()).hexdigest()[:16]  # a bucket name, not security


def ratelimit_headers(bucket: str, *, limit: int = 50, remaining: int = 49,
                      reset_after: float = 1.0) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket_hash(bucket),
    }


def rate_limited(bucket: str, retry_after: float, *, is_global: bool = False,
                 limit: int = 5) -> ApiError:
    headers = ratelimit_headers(bucket, limit=limit, remaining=0, reset_after=retry_after)
    headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    headers["X-RateLimit-Scope"] = "global" if is_global else "user"
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return ApiError(429, 0, "You are being rate limited.", headers=headers,
                    extra={"retry_after": round(retry_after, 3), "global": is_global})


class EditLimiter:
    """A sliding window per bucket: at most ``limit`` edits in ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque[float]] = {}
        self.rejected = 0

    def check(self, bucket: str) -> dict[str, str]:
        now = time.monotonic()
        hits = self._hits.setdefault(bucket, deque())
        while hits and now - hits[0] >= self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            self.rejected += 1
            raise rate_limited(bucket, hits[0] + self.window_s - now, limit=self.limit)
        hits.append(now)
        reset_after = hits[0] + self.window_s - now
        return ratelimit_headers(bucket, limit=self.limit, remaining=self.limit - len(hits),
                                 reset_after=reset_after)


@dataclass
class InjectedFailure:
    status: int
    retry_after: float
    is_global: bool = False

    def error(self, bucket: str) -> ApiError:
        if self.status == 429:
            return rate_limited(bucket, self.retry_after, is_global=self.is_global)
        messages = {500: "500: Internal Server Error", 502: "502: Bad Gateway",
                    503: "503: Service Unavailable", 504: "504: Gateway Timeout"}
        return ApiError(self.status, 0, messages.get(self.status, f"{self.status}: Error"))
