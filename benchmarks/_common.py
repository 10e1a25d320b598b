"""Printing benchmark rows: `name  figure  peer/limit  ratio`, one line each, so a run reads as a table.

Kept small and stable: other benchmark modules import `row()` and `cache_dir()`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where generated inputs are kept between runs (`LOA_BENCH_CACHE`, default /tmp/loa-bench)."""
    path = Path(os.environ.get("LOA_BENCH_CACHE", "/tmp/loa-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fmt(value: float, unit: str) -> str:
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def row(
    name: str,
    figure: float,
    peer: float,
    *,
    unit: str = "",
    peer_name: str = "peer",
    goal: float | None = None,
) -> float:
    """Print one row and return figure / peer. `goal` is the ratio not to exceed (shown as ok/OVER)."""
    ratio = figure / peer if peer else math.nan
    verdict = "" if goal is None else f"  goal <= {goal:g}: {'ok' if ratio <= goal else 'OVER'}"
    print(
        f"{name:<40} {_fmt(figure, unit):>12}   {peer_name} {_fmt(peer, unit):>10}   ratio {ratio:.2f}{verdict}",
        flush=True,
    )
    return ratio
