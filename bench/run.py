"""Every benchmark figure in one command; exits non-zero if any target fails.

    python -m bench.run            # the full run (about 10 minutes on 2 cores)
    python -m bench.run --quick    # one pair per size, 3 deliveries per size, 1 run each

The real bot runs as ``python -m bot`` against the fake Discord and the provider emulators,
all on 127.0.0.1. Progress goes to stderr; the tables go to stdout (Markdown).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench import ack, delivery, memory, quota, startup
from bench.common import Report, machine_note


async def run_all(work: Path, quick: bool) -> list[Report]:
    reports = []
    print("acknowledgement latency and memory...", file=sys.stderr)
    reports.append(await ack.measure([500, 1500], work / "ack", reps=1 if quick else 3))
    print("resident memory...", file=sys.stderr)
    reports.append(await memory.measure(work / "memory"))
    print("start-up...", file=sys.stderr)
    reports.append(await startup.measure(work / "startup", runs=1 if quick else 3))
    print("delivery...", file=sys.stderr)
    reports.append(await delivery.measure(work / "delivery", reps=3 if quick else 7))
    print("quota...", file=sys.stderr)
    reports.append(await quota.measure(work / "quota", 1000, runs=1 if quick else 5))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        for sub in ("ack", "memory", "startup", "delivery", "quota"):
            (work / sub).mkdir()
        reports = asyncio.run(run_all(work, args.quick))
    for report in reports:
        print(report.table())
        print()
    failed = [f.name for r in reports for f in r.figures if f.passed is False]
    took = time.monotonic() - start
    print(f"{machine_note()}; {'quick' if args.quick else 'full'} run, {took:.0f} s.")
    print(f"reproduce: python -m bench.run{' --quick' if args.quick else ''}")
    print("All targets met." if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
