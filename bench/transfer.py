"""The delivery baseline: download a file once and upload it once, nothing else.

    python -m bench.transfer URL API_BASE TOKEN CHANNEL_ID [memory|file]

GETs ``URL``, then POSTs it as a message attachment to the fake Discord's
``/channels/{id}/messages`` (the multipart shape discord.py sends), over one aiohttp session
on loopback: held in memory (``memory``, the default) or streamed through a temporary file
(``file``, as the bot does). Prints ``{"seconds": ..., "bytes": ...}``. Run as its own
process, as the bot is.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import aiohttp


async def transfer(url: str, api_base: str, token: str, channel_id: str,
                   mode: str = "memory") -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        async with aiohttp.ClientSession() as session:
            start = time.perf_counter()
            async with session.get(url) as resp:
                resp.raise_for_status()
                if mode == "memory":
                    data: bytes | BinaryIO = await resp.read()
                    size = len(data)  # type: ignore[arg-type]
                else:
                    size = 0
                    with path.open("wb") as out:
                        async for chunk in resp.content.iter_chunked(1024 * 1024):
                            out.write(chunk)
                            size += len(chunk)
                    data = path.open("rb")
            form = aiohttp.FormData(quote_fields=False)
            payload = {"content": "baseline",
                       "attachments": [{"id": 0, "filename": "video.mp4"}]}
            form.add_field("payload_json", json.dumps(payload), content_type="application/json")
            form.add_field("files[0]", data, filename="video.mp4", content_type="video/mp4")
            async with session.post(f"{api_base}/channels/{channel_id}/messages", data=form,
                                    headers={"Authorization": f"Bot {token}"}) as resp:
                resp.raise_for_status()
                await resp.read()
            elapsed = time.perf_counter() - start
            if not isinstance(data, bytes):
                data.close()
        return elapsed, size


def main() -> int:
    url, api_base, token, channel_id = sys.argv[1:5]
    mode = sys.argv[5] if len(sys.argv) > 5 else "memory"
    seconds, size = asyncio.run(transfer(url, api_base, token, channel_id, mode))
    print(json.dumps({"seconds": seconds, "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
