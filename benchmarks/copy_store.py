"""Benchmark: copy an ERA5-like Zarr store, raw zarr vs xarray+dask vs xarray_beam.

    python benchmarks/copy_store.py --gb 1.0

Writes a synthetic store (once, cached under --workdir), then copies it with
each method in its own subprocess, so each gets a clean peak RSS. Times are
measured inside the subprocess, after imports. Prints a table with ratios to
the raw zarr copy (the machine's limit).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

METHODS = ("raw_zarr", "xarray_dask", "xarray_beam")


def _copy(method: str, source: str, target: str) -> float:
    shutil.rmtree(target, ignore_errors=True)
    if method == "raw_zarr":
        from concurrent.futures import ThreadPoolExecutor

        import zarr

        src = zarr.open_group(source, mode="r")
        start = time.perf_counter()
        dst = zarr.open_group(target, mode="w")

        def copy_array(item):
            name, array = item
            out = dst.create_array(
                name, shape=array.shape, chunks=array.chunks, dtype=array.dtype
            )
            if not array.ndim:
                out[...] = array[...]
                return
            step = array.chunks[0]
            for i in range(0, array.shape[0], step):
                out[i : i + step] = array[i : i + step]

        # One thread per array, as a careful hand-written copy would do.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(copy_array, src.arrays()))
        return time.perf_counter() - start
    if method == "xarray_dask":
        import xarray

        start = time.perf_counter()
        xarray.open_zarr(source).to_zarr(target, mode="w")
        return time.perf_counter() - start
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    source_ds, chunks = xbeam.open_zarr(source)
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xbeam.DatasetToChunks(source_ds, chunks)
            | xbeam.ChunksToZarr(
                target, xbeam.make_template(source_ds), chunks, mode="w"
            )
        )
    return time.perf_counter() - start


def _run_one(args: argparse.Namespace) -> None:
    target = os.path.join(args.workdir, f"copy_{args.method}.zarr")
    seconds = _copy(args.method, args.source, target)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))
    shutil.rmtree(target, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="store size")
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--workdir", default="/tmp/xarray_beam_bench")
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        _run_one(args)
        return

    from xarray_beam import synthetic

    os.makedirs(args.workdir, exist_ok=True)
    hours = synthetic.hours_for_size(args.gb * 1e9, args.resolution)
    source = os.path.join(args.workdir, f"era5_{hours}h_{args.resolution}.zarr")
    if not os.path.exists(source):
        synthetic.write_era5_like(source, hours=hours, resolution=args.resolution)
    nbytes = (
        hours
        * len(synthetic.DEFAULT_VARIABLES)
        * 4
        * (
            synthetic.grid(args.resolution)[0].size
            * synthetic.grid(args.resolution)[1].size
        )
    )
    print(f"store: {source} ({nbytes / 1e9:.2f} GB uncompressed, {hours} hours)")
    results = {}
    for method in METHODS:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--method",
                method,
                "--source",
                source,
                "--workdir",
                args.workdir,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    raw = results["raw_zarr"]["seconds"]
    print(f"{'method':<14}{'seconds':>9}{'MB/s':>8}{'x raw':>8}{'peak RSS MB':>13}")
    for method, r in results.items():
        print(
            f"{method:<14}{r['seconds']:>9.2f}{nbytes / 1e6 / r['seconds']:>8.0f}"
            f"{r['seconds'] / raw:>8.2f}{r['peak_rss_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
