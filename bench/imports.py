"""What a library costs the bot: import time and resident memory on top of the bot.

Imports the bot (app and cogs) first, then each named module in turn, printing the time
each import took and how much VmRSS grew. A module that is not installed is reported as
such. ``matplotlib.pyplot`` is imported with the Agg backend and draws one bar chart, to
compare with the Pillow picture that ``/usage`` draws.

    python -m bench.imports prometheus_client PIL.ImageDraw matplotlib.pyplot
"""

from __future__ import annotations

import importlib
import io
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(names: list[str]) -> None:
    start = time.perf_counter()
    importlib.import_module("bot.app")
    importlib.import_module("cogs.quota")
    print(f"bot: {1000 * (time.perf_counter() - start):.0f} ms, RSS {rss_mb():.1f} MB")
    for name in names:
        before, start = rss_mb(), time.perf_counter()
        try:
            if name.startswith("matplotlib"):
                import matplotlib

                matplotlib.use("Agg")
            module = importlib.import_module(name)
        except ImportError:
            print(f"{name}: not installed")
            continue
        took = 1000 * (time.perf_counter() - start)
        print(f"{name}: +{took:.1f} ms, RSS +{rss_mb() - before:.1f} MB")
        if name == "matplotlib.pyplot":
            start = time.perf_counter()
            figure, axes = module.subplots(figsize=(7.2, 3.0), dpi=100)
            axes.bar(range(7), [40, 50, 60, 70, 80, 90, 100])
            figure.savefig(io.BytesIO(), format="png")
            module.close(figure)
            print(f"  first chart: {1000 * (time.perf_counter() - start):.0f} ms, "
                  f"RSS +{rss_mb() - before:.1f} MB in all")
        if name == "PIL.ImageDraw":
            from bot.media.chart import PALETTE, Series, UsageChart, chart_days, draw

            days = chart_days("week", time.time())
            bars = [Series(f"#{i}", e, c, [8 * i] * 7) for i, (e, c) in enumerate(PALETTE)]
            start = time.perf_counter()
            draw(UsageChart("Seconds of video per day", days, bars, days[3]))
            print(f"  first chart: {1000 * (time.perf_counter() - start):.0f} ms, "
                  f"RSS +{rss_mb() - before:.1f} MB in all")


if __name__ == "__main__":
    main(sys.argv[1:])
