"""Shared benchmark machinery: each method runs in its own process.

A method is a function ``(source, target, args) -> seconds`` (timed inside
the process, after imports). The parent prints seconds, MB/s, the ratio to a
reference method and the peak RSS of the method's process tree; with
``--rounds N``, medians of N interleaved rounds.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

Method = Callable[[str, str, Any], float]


def peak_rss_mb() -> float:
    """Peak RSS of this process plus the largest of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def raw_zarr_copy(source: str, target: str, args: Any) -> float:
    """The machine's limit: copy every stored chunk with zarr, a thread per array."""
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    src = zarr.open_group(source, mode="r")
    start = time.perf_counter()
    dst = zarr.open_group(target, mode="w")

    def copy(item):
        name, array = item
        out = dst.create_array(
            name, shape=array.shape, chunks=array.chunks, dtype=array.dtype
        )
        step = array.chunks[0] if array.ndim else 1
        for i in range(0, array.shape[0] if array.ndim else 1, step):
            out[i : i + step] = array[i : i + step]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(copy, src.arrays()))
    return time.perf_counter() - start


def synthetic_store(gb: float, resolution: float, workdir: str) -> tuple[str, int]:
    """A synthetic ERA5-like store of about ``gb`` (made once, then reused)."""
    from xarray_beam import synthetic

    os.makedirs(workdir, exist_ok=True)
    hours = synthetic.hours_for_size(gb * 1e9, resolution)
    path = os.path.join(workdir, f"era5_{hours}h_{resolution}.zarr")
    if not os.path.exists(path):
        # In a child process: Linux carries a process's peak RSS over to the
        # children it starts, so a parent that held the new store's arrays
        # would inflate every method's peak.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from xarray_beam import synthetic; "
                "synthetic.write_era5_like(sys.argv[1], hours=int(sys.argv[2]), "
                "resolution=float(sys.argv[3]))",
                path,
                str(hours),
                str(resolution),
            ],
            check=True,
        )
    lat, lon = synthetic.grid(resolution)
    nbytes = hours * lat.size * lon.size * 4 * len(synthetic.DEFAULT_VARIABLES)
    return path, nbytes


def run_child(methods: dict[str, Method], args: Any) -> None:
    """In the child process: run one method and print its result as JSON."""
    target = os.path.join(args.workdir, f"out_{args.method}.zarr")
    shutil.rmtree(target, ignore_errors=True)
    os.sync()  # as in run_all: nothing left to write back from before
    result = methods[args.method](args.source, target, args)
    if not isinstance(result, dict):
        result = {"seconds": result}
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    shutil.rmtree(target, ignore_errors=True)


def run_all(
    script: str,
    methods: list[str],
    source: str,
    nbytes: int,
    argv: list[str],
    rounds: int = 1,
) -> dict[str, dict]:
    """Run every method in a fresh process, ``rounds`` times interleaved
    (method 1, method 2, ..., method 1, ...); print and return the table.

    With several rounds a row shows the median seconds, the median of the
    per-round ratios to the first method (each against that round's run of
    it) with their range, and the largest peak RSS.
    """
    # OpenBLAS's idle threads spin and steal CPU from the work being timed.
    env = {"OPENBLAS_NUM_THREADS": "1", **os.environ}
    runs: dict[str, list[dict]] = {method: [] for method in methods}
    ratios: dict[str, list[float]] = {method: [] for method in methods}
    for _ in range(rounds):
        reference = None
        for method in methods:
            # Each method starts with no dirty pages left for the kernel to
            # write back: the gigabytes an earlier method wrote (and the
            # output deleted just before) would otherwise compete with this
            # one's disk I/O.
            os.sync()
            done = subprocess.run(
                [sys.executable, script, *argv, "--method", method, "--source", source],
                capture_output=True,
                text=True,
                env=env,
            )
            if done.returncode:
                print(f"{method} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[method].append(result)
            if method == methods[0]:
                reference = result["seconds"]
            if reference:
                ratios[method].append(result["seconds"] / reference)
    results = {m: _summary(r, ratios[m]) for m, r in runs.items() if r}
    spread = rounds > 1
    print(
        f"{'method':<22}{'seconds':>9}{'MB/s':>8}{'x ' + methods[0]:>17}"
        f"{'range' if spread else '':>13}{'peak RSS MB':>13}{'projected MB':>14}"
    )
    for method, r in results.items():
        projected = r.get("projected_mb")
        low, high = r["ratio_range"]
        print(
            f"{method:<22}{r['seconds']:>9.2f}{nbytes / 1e6 / r['seconds']:>8.0f}"
            f"{r['ratio']:>17.2f}{f'{low:.2f}-{high:.2f}' if spread else '':>13}"
            f"{r['peak_rss_mb']:>13.0f}"
            f"{'' if projected is None else f'{projected:.0f}':>14}"
        )
    if spread:
        print(f"medians of {rounds} interleaved rounds")
    return results


def _summary(runs: list[dict], ratios: list[float]) -> dict:
    """One method's rounds: median seconds and ratio, largest peak."""
    summary = dict(runs[-1])
    summary["seconds"] = statistics.median(r["seconds"] for r in runs)
    summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    summary["ratio"] = statistics.median(ratios) if ratios else float("nan")
    summary["ratio_range"] = (min(ratios), max(ratios)) if ratios else (0.0, 0.0)
    summary["rounds"] = runs
    return summary
