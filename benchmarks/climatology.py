"""Benchmark: month x hour climatology of an ERA5-like Zarr store.

    python benchmarks/climatology.py --gb 2

Writes a synthetic store (hourly, 2 degree grid, four float32 variables,
chunks of 24 hours; made once and cached under --workdir), then, each in its
own process: a raw read of every stored chunk (the limit), xarray + dask
``groupby(['month', 'hour']).mean()`` (with flox when it is installed), and
our ``Climatology`` on the in-process DirectRunner, both writing the result
to Zarr. Prints wall time, MB/s, ratio to the raw read and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import _harness  # noqa: E402

BY = ("month", "hour")


def raw_read(source: str, target: str, args) -> float:
    """Read and decode every stored chunk with zarr, one thread per array."""
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    group = zarr.open_group(source, mode="r")
    start = time.perf_counter()

    def read(item):
        _, array = item
        step = array.chunks[0] if array.ndim else 1
        for i in range(0, array.shape[0] if array.ndim else 1, step):
            array[i : i + step]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, group.arrays()))
    return time.perf_counter() - start


def xarray_dask(source: str, target: str, args) -> float:
    import xarray

    start = time.perf_counter()
    ds = xarray.open_zarr(source)
    times = ds.indexes["time"]
    ds = ds.assign_coords(month=("time", times.month), hour=("time", times.hour))
    ds.groupby(list(BY)).mean().to_zarr(target, mode="w")
    return time.perf_counter() - start


def xarray_beam_climatology(source: str, target: str, args) -> float:
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    ds, chunks = xbeam.open_zarr(source)
    climatology = xbeam.Climatology(
        BY,
        template=ds,
        temp_store=target + ".partials",
        max_mem=args.max_mem_mb * 2**20,
    )
    template = climatology.template(ds)
    zarr_chunks = {"month": 1, "hour": -1}
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(
                ds,
                {"time": args.read_hours},
                split_vars=True,
                num_threads=2,
            )
            | climatology
            | xbeam.ChunksToZarr(target, template, zarr_chunks)
        )
    return time.perf_counter() - start


def xarray_beam_readme(source: str, target: str, args) -> float:
    """The pipeline exactly as the README writes it: no tuning options."""
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    source_ds, _ = xbeam.open_zarr(source)
    climatology = xbeam.Climatology(("month", "hour"), "mean", template=source_ds)
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        (
            p
            | xbeam.DatasetToChunks(source_ds, {"time": 120})
            | climatology
            | xbeam.ChunksToZarr(target, climatology.template(source_ds), {"month": 1})
        )
    return time.perf_counter() - start


METHODS = {
    "raw_read": raw_read,
    "xarray_dask": xarray_dask,
    "xarray_beam": xarray_beam_climatology,
    "readme": xarray_beam_readme,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0, help="store size")
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument(
        "--read-hours", type=int, default=120, help="hours per chunk we read"
    )
    parser.add_argument("--max-mem-mb", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/xarray_beam_bench")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds (medians)"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated subset"
    )
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        _harness.run_child(METHODS, args)
        return
    source, nbytes = _harness.synthetic_store(args.gb, args.resolution, args.workdir)
    print(f"store: {source} ({nbytes / 1e9:.2f} GB); climatology by {BY}")
    argv = [
        f"--resolution={args.resolution}",
        f"--workdir={args.workdir}",
        f"--read-hours={args.read_hours}",
        f"--max-mem-mb={args.max_mem_mb}",
    ]
    _harness.run_all(
        __file__, args.methods.split(","), source, nbytes, argv, rounds=args.rounds
    )


if __name__ == "__main__":
    main()
