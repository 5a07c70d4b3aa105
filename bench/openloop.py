"""Open-loop load: items sent on a fixed schedule whatever happened to the earlier ones, so a
queue in front of the server counts in each item's latency (a closed loop hides it: its
clients wait, and the offered load drops as the server slows down)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")


def open_loop(send: Callable[[Item], object], items: Sequence[Item], rate: float) -> list[float]:
    """Send item i at start + i / rate from a pool of threads; the latency of each, in seconds,
    from its scheduled time to the end of its ``send``."""
    latencies = [float("nan")] * len(items)
    start = time.monotonic() + 0.2

    def one(i: int, item: Item) -> None:
        send(item)
        latencies[i] = time.monotonic() - (start + i / rate)

    with ThreadPoolExecutor(max_workers=64) as pool:
        for i, item in enumerate(items):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i, item)
    return latencies


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def thirds(latencies: Sequence[float]) -> tuple[float, float]:
    """The p90 of the first and of the last third of the run, in seconds: a relay that slows
    down over the run (a growing queue, a scan over a growing table, a leak) moves the last."""
    third = max(1, len(latencies) // 3)
    return quantile(latencies[:third], 0.9), quantile(latencies[-third:], 0.9)


def windows(latencies: Sequence[float], rate: float, seconds: float = 10.0) -> list[str]:
    """p50 / p90 / max per window of the run, in ms: the shape behind the thirds."""
    size = max(1, int(rate * seconds))
    rows = []
    for start in range(0, len(latencies), size):
        chunk = latencies[start : start + size]
        rows.append(
            f"{start / rate:4.0f} s: p50 {quantile(chunk, 0.5) * 1000:.0f}, "
            f"p90 {quantile(chunk, 0.9) * 1000:.0f}, max {max(chunk) * 1000:.0f}"
        )
    return rows
