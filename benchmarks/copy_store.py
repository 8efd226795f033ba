"""Benchmark: copy an ERA5-like Zarr store, raw zarr vs xarray+dask vs xarray_beam.

    python benchmarks/copy_store.py --gb 1.0

Writes a synthetic store (once, cached under --workdir), then copies it with
each method in its own process, so each gets a clean peak RSS. Times are
measured inside the process, after imports. Prints a table with ratios to the
raw zarr copy (the machine's limit).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import _harness  # noqa: E402


def xarray_dask(source: str, target: str, args) -> float:
    import xarray

    start = time.perf_counter()
    xarray.open_zarr(source).to_zarr(target, mode="w")
    return time.perf_counter() - start


def xarray_beam_copy(source: str, target: str, args) -> float:
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    source_ds, chunks = xbeam.open_zarr(source)
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(source_ds, chunks)
            | xbeam.ChunksToZarr(
                target, xbeam.make_template(source_ds), chunks, mode="w"
            )
        )
    return time.perf_counter() - start


METHODS = {
    "raw_zarr_copy": _harness.raw_zarr_copy,
    "xarray_dask": xarray_dask,
    "xarray_beam": xarray_beam_copy,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="store size")
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--workdir", default="/tmp/xarray_beam_bench")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds (medians)"
    )
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        _harness.run_child(METHODS, args)
        return
    source, nbytes = _harness.synthetic_store(args.gb, args.resolution, args.workdir)
    print(f"store: {source} ({nbytes / 1e9:.2f} GB uncompressed)")
    argv = [f"--resolution={args.resolution}", f"--workdir={args.workdir}"]
    _harness.run_all(__file__, list(METHODS), source, nbytes, argv, rounds=args.rounds)


if __name__ == "__main__":
    main()
