"""Benchmark: reading from object storage with per-request latency.

    python benchmarks/object_store.py --latency-ms 20 --rounds 3

Starts moto's S3 server on 127.0.0.1 (the `test` extra brings it) behind a
loopback proxy that delays every request by --latency-ms, as cloud buckets
do, writes an ERA5-like store of one-day chunks into it, and then, in
interleaved rounds in this process: zarr-python's own read of every array
(its async pipeline, the reference), and ``DatasetToChunks`` reading the
same arrays on the in-process DirectRunner with default options. Prints the
median seconds, the ratio to zarr's read and the requests each made.
Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))
import _latency_proxy  # noqa: E402


def _zarr_read(url: str, options: dict) -> float:
    import zarr

    group = zarr.open_group(url, storage_options=options, mode="r")
    start = time.perf_counter()
    for _, array in group.arrays():
        if array.ndim == 3:
            array[...]
    return time.perf_counter() - start


def _ours(url: str, options: dict, hours: int) -> float:
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    source, _ = xbeam.open_zarr(url, storage_options=options)
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(source, {"time": hours})
            | beam.combiners.Count.Globally()
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--resolution", type=float, default=5.0)
    parser.add_argument("--read-hours", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import emulators

    from xarray_beam import synthetic

    with emulators.s3_bucket(pathlib.Path(tempfile.mkdtemp())) as bucket:
        options = dict(bucket.storage_options)
        client = dict(options["client_kwargs"])
        server_port = int(client["endpoint_url"].rsplit(":", 1)[1])
        proxy = _latency_proxy.LatencyProxy(server_port, args.latency_ms / 1000)
        client["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
        slow = {**options, "client_kwargs": client}

        url = bucket.url("era5.zarr")
        data = synthetic.era5_like(hours=24 * args.days, resolution=args.resolution)
        data.chunk({"time": 24}).to_zarr(url, storage_options=options)
        print(
            f"store: {url}, {data.nbytes / 1e6:.0f} MB in "
            f"{len(data.data_vars) * args.days} chunk objects; "
            f"{args.latency_ms:g} ms per request"
        )
        times: dict[str, list[float]] = {"zarr read": [], "DatasetToChunks": []}
        requests: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, run in (
                ("zarr read", lambda: _zarr_read(url, slow)),
                ("DatasetToChunks", lambda: _ours(url, slow, args.read_hours)),
            ):
                before = proxy.requests
                times[name].append(run())
                requests[name] = proxy.requests - before
        proxy.stop()

    reference = statistics.median(times["zarr read"])
    print(f"{'method':<18}{'median s':>10}{'x zarr':>8}{'requests':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<18}{median:>10.2f}{median / reference:>8.2f}{requests[name]:>10}"
        )


if __name__ == "__main__":
    main()
