"""Benchmark: reading from object storage with per-request latency.

    python benchmarks/object_store.py --latency-ms 20 --rounds 3

Starts moto's S3 server on 127.0.0.1 (the `test` extra brings it) behind a
loopback proxy that delays every request by --latency-ms, as cloud buckets
do, writes an ERA5-like store of one-day chunks into it, and then, in
interleaved rounds in this process: zarr-python's own read of every array
(its async pipeline, the reference), and ``DatasetToChunks`` reading the
same arrays on the in-process DirectRunner with default options; then the
README's climatology pipeline as written, bucket to bucket (against zarr's
read), and ``rechunk_zarr`` to pencils bucket to bucket (against zarr's own
same-chunk copy). Prints median seconds, the ratio to the reference and the
requests each made (in its last round).
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


def _ours_climatology(url: str, options: dict, target: str) -> float:
    """The README's climatology pipeline as written, bucket to bucket."""
    import apache_beam as beam

    import xarray_beam as xbeam

    start = time.perf_counter()
    source, _ = xbeam.open_zarr(url, storage_options=options)
    climatology = xbeam.Climatology(("month", "hour"), "mean", template=source)
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(source, {"time": 120})
            | climatology
            | xbeam.ChunksToZarr(
                target,
                climatology.template(source),
                {"month": 1},
                storage_options=options,
            )
        )
    return time.perf_counter() - start


def _zarr_copy(url: str, options: dict, target: str) -> float:
    """zarr-python's own same-chunk copy of every array (the reference)."""
    import zarr

    source = zarr.open_group(url, storage_options=options, mode="r")
    start = time.perf_counter()
    out = zarr.open_group(target, storage_options=options, mode="w")
    for name, array in source.arrays():
        copy = out.create_array(
            name, shape=array.shape, chunks=array.chunks, dtype=array.dtype
        )
        copy[...] = array[...]
    return time.perf_counter() - start


def _ours_rechunk(url: str, options: dict, target: str) -> float:
    """``rechunk_zarr`` to pencils, bucket to bucket, default options."""
    from xarray_beam.beam import rechunk_zarr

    start = time.perf_counter()
    rechunk_zarr.rechunk_zarr(
        url,
        target,
        {"time": -1, "latitude": 12, "longitude": 24},
        storage_options=options,
    )
    return time.perf_counter() - start


def _s3fs_has_max_concurrency() -> bool:
    import inspect

    import s3fs

    return "max_concurrency" in inspect.signature(s3fs.S3FileSystem.__init__).parameters


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

        def fresh() -> str:
            return bucket.new_prefix() + ".zarr"

        # (method, the reference it is compared with, how to run it)
        methods = [
            ("zarr read", "zarr read", lambda: _zarr_read(url, slow)),
        ]
        if _s3fs_has_max_concurrency():
            # s3fs asks for each object's size (a HEAD) before a whole-object
            # GET unless max_concurrency is 1: zarr's read at its best.
            no_head = {**slow, "max_concurrency": 1}
            methods.append(
                ("zarr read, no HEAD", "zarr read", lambda: _zarr_read(url, no_head))
            )
        methods += [
            (
                "DatasetToChunks",
                "zarr read",
                lambda: _ours(url, slow, args.read_hours),
            ),
            (
                "README climatology",
                "zarr read",
                lambda: _ours_climatology(url, slow, fresh()),
            ),
            ("zarr copy", "zarr copy", lambda: _zarr_copy(url, slow, fresh())),
            ("rechunk_zarr", "zarr copy", lambda: _ours_rechunk(url, slow, fresh())),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
        requests: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, _, run in methods:
                before = proxy.requests
                times[name].append(run())
                requests[name] = proxy.requests - before
        proxy.stop()

    header = f"{'method':<22}{'median s':>10}{'x ref':>7}  {'reference':<11}"
    print(f"{header}{'requests':>9}")
    for name, reference, _ in methods:
        median = statistics.median(times[name])
        ratio = median / statistics.median(times[reference])
        print(
            f"{name:<22}{median:>10.2f}{ratio:>7.2f}  {reference:<11}"
            f"{requests[name]:>9}"
        )


if __name__ == "__main__":
    main()
