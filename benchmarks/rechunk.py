"""Benchmark: pancake -> pencil rechunk of an ERA5-like Zarr store.

    python benchmarks/rechunk.py --gb 2 --max-mem-mb 256

Writes a synthetic store with chunks of 24 hours x the whole globe (once,
cached under --workdir), then in one go, each in its own process: a raw zarr
copy (the machine's limit), xarray + dask ``chunk().to_zarr()``, and our
storage-based (``rechunk_zarr``) and shuffle-based (``DatasetToChunks |
Rechunk | ChunksToZarr``) rechunks on the in-process DirectRunner. Prints wall
time, MB/s, ratio to the raw copy, peak RSS and the plan's projected peak.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import _harness  # noqa: E402

TARGET = {"time": -1, "latitude": 23, "longitude": 45}


def dask_xarray(source: str, target: str, args) -> float:
    import xarray

    start = time.perf_counter()
    ds = xarray.open_zarr(source)
    for var in ds.variables.values():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
    ds.chunk(TARGET).to_zarr(target, mode="w")
    return time.perf_counter() - start


def xarray_beam_storage(source: str, target: str, args) -> dict:
    from xarray_beam.beam import rechunk_zarr

    start = time.perf_counter()
    plan = rechunk_zarr.rechunk_zarr(
        source,
        target,
        TARGET,
        max_mem=args.max_mem_mb * 2**20,
        temp_store=target + ".tmp",
        num_threads=args.threads,
    )
    seconds = time.perf_counter() - start
    projected = plan.worker_peak(args.threads) / 2**20
    return {"seconds": seconds, "projected_mb": projected}


def xarray_beam_shuffle(source: str, target: str, args) -> dict:
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    ds, chunks = xbeam.open_zarr(source)
    itemsize = 4
    rechunk = xbeam.Rechunk(
        dict(ds.sizes), chunks, TARGET, itemsize, max_mem=args.max_mem_mb * 2**20
    )
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(ds, chunks, split_vars=True)
            | rechunk
            | xbeam.ChunksToZarr(target, xbeam.make_template(ds), rechunk.target_chunks)
        )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "projected_mb": rechunk.plan.worker_peak() / 2**20}


METHODS = {
    "raw_zarr_copy": _harness.raw_zarr_copy,
    "xarray_dask": dask_xarray,
    "xarray_beam_storage": xarray_beam_storage,
    "xarray_beam_shuffle": xarray_beam_shuffle,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0, help="store size")
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--max-mem-mb", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="tasks at once")
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
    hours = int(os.path.basename(source).split("_")[1][:-1])
    lat_size, lon_size = (int(180 / args.resolution) + 1, int(360 / args.resolution))
    print(
        f"store: {source} ({nbytes / 1e9:.2f} GB, {hours} hours); "
        f"pancakes (24, {lat_size}, {lon_size}) -> pencils {TARGET}; "
        f"max_mem {args.max_mem_mb} MiB"
    )
    argv = [
        f"--resolution={args.resolution}",
        f"--max-mem-mb={args.max_mem_mb}",
        f"--workdir={args.workdir}",
        f"--threads={args.threads}",
    ]
    _harness.run_all(
        __file__, args.methods.split(","), source, nbytes, argv, rounds=args.rounds
    )


if __name__ == "__main__":
    main()
