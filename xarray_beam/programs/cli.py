"""The ``xarray-beam`` command: info, plan, rechunk, climatology, verify.

Beam options go after ``--``, e.g.
``xarray-beam rechunk in.zarr out.zarr --target-chunks time=-1 -- --runner
DataflowRunner --project my-project ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from xarray_beam.io import stores, zarr_io
from xarray_beam.model import routes
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import launch

if TYPE_CHECKING:
    import xarray
    import zarr

_EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Reports mistakes in one line, with exit code 2."""

    def error(self, message: str):
        self.exit(_EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an fsspec option for gs:// or s3:// stores (repeatable), e.g. token=anon",
    )


def _info(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    options = launch.parse_storage_options(args.storage_option)
    dataset, chunks = zarr_io.open_zarr(args.store, **_kwargs(options))
    group = stores.open_group(stores.normalize_store(args.store), "r", options)
    print(f"{args.store}: Zarr format {group.metadata.zarr_format}")
    print("dimensions: " + ", ".join(f"{d}={n}" for d, n in dataset.sizes.items()))
    print(f"chunks to read it by: {chunks}")
    print("variables:")
    variables = cast("Mapping[str, xarray.Variable]", dataset.variables)
    width = max((len(name) for name in variables), default=0)
    for name, var in variables.items():
        array = cast("zarr.Array | None", group.get(name))  # variables are arrays
        layout = ""
        if array is not None:
            layout = f" chunks {tuple(array.chunks)}"
            shards = getattr(array, "shards", None)
            if shards:
                layout += f" shards {tuple(shards)}"
        kind = "coord" if name in dataset.coords else "data "
        print(
            f"  {kind} {name:<{width}}  {str(var.dtype):<15} {tuple(var.dims)}"
            f"{layout}  {format_bytes(var.nbytes)}"
        )
    print(f"total: {format_bytes(dataset.nbytes)}")
    return 0


def _plan(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.beam import rechunk_zarr

    plan = rechunk_zarr.plan_store_rechunk(
        args.source,
        args.target_chunks,
        args.max_mem,
        args.min_mem,
        method=args.method,
        target_shards=args.target_shards,
        storage_options=launch.parse_storage_options(args.storage_option),
    )
    reason = (
        "store to store through temporary stores, as `xarray-beam rechunk` runs it"
        if args.method == "storage"
        else "through Beam shuffles (Rechunk), for comparison"
    )
    print(routes.RechunkRoute(args.method, args.target_chunks, reason, plan))
    return 0


def _rechunk(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.programs import jobs

    jobs.rechunk_job(
        args.source,
        args.target,
        args.target_chunks,
        args.max_mem,
        args.temp_store,
        beam_args=beam_args,
        storage_options=launch.parse_storage_options(args.storage_option),
        mode=args.mode,
        num_threads=args.num_threads,
        min_mem=args.min_mem,
        target_shards=args.target_shards,
        zarr_format=args.zarr_format,
        keep_temp=args.keep_temp,
        resume=args.resume,
    )
    return 0


def _climatology(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.programs import jobs

    jobs.climatology_job(
        args.source,
        args.target,
        args.by,
        args.stat,
        read_chunks=args.read_chunks,
        temp_store=args.temp_store,
        max_mem=args.max_mem,
        mode=args.mode,
        num_threads=args.num_threads,
        beam_args=beam_args,
        storage_options=launch.parse_storage_options(args.storage_option),
        resume=args.resume,
        skipna=not args.keep_nan,
        min_count=args.min_count,
        ddof=args.ddof,
    )
    return 0


def _verify(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.io.verify import verify_zarr

    report = verify_zarr(
        args.store,
        decode=args.decode,
        storage_options=launch.parse_storage_options(args.storage_option),
    )
    print(report)
    return 0 if report.complete else 1


def _kwargs(storage_options):
    return {"storage_options": storage_options} if storage_options else {}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xarray-beam``."""
    parser = _Parser(
        prog="xarray-beam",
        description="Beam pipelines over Zarr stores of xarray data: inspect, plan, "
        "rechunk, compute climatologies, verify. Beam options go after '--'.",
        epilog="example: xarray-beam rechunk era5.zarr pencils.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MB",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    info = commands.add_parser(
        "info",
        help="dimensions, variables, chunks and sizes of a store",
        epilog="example: xarray-beam info era5.zarr",
    )
    info.add_argument("store", help="path or URL of a Zarr store")
    _add_storage_options(info)
    info.set_defaults(func=_info)

    def add_rechunk_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target-chunks",
            type=launch.parse_chunks,
            required=True,
            metavar="DIM=SIZE,...",
            help="new chunk size per dimension, -1 for whole (others keep their "
            "chunks), e.g. time=-1,latitude=23,longitude=45",
        )
        sub.add_argument(
            "--max-mem",
            type=launch.parse_bytes,
            default=2**30,
            metavar="SIZE",
            help="memory a task may use, counting its copies (default 1GiB)",
        )
        sub.add_argument(
            "--min-mem",
            type=launch.parse_bytes,
            metavar="SIZE",
            help="smallest piece worth moving (adds passes to keep pieces large)",
        )
        sub.add_argument(
            "--target-shards",
            type=launch.parse_chunks,
            metavar="DIM=SIZE,...",
            help="shard size per dimension of the output (Zarr v3)",
        )
        _add_storage_options(sub)

    plan = commands.add_parser(
        "plan",
        help="print the rechunk plan of a store (runs nothing)",
        epilog="example: xarray-beam plan era5.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MB",
    )
    plan.add_argument("source", help="path or URL of the Zarr store to rechunk")
    add_rechunk_arguments(plan)
    plan.add_argument(
        "--method",
        choices=("storage", "shuffle"),
        default="storage",
        help="storage (rechunk, through temporary stores) or shuffle (the Rechunk "
        "transform, through Beam's shuffle)",
    )
    plan.set_defaults(func=_plan)

    def add_output_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--mode",
            choices=("w-", "w", "r+"),
            help="w- (default) refuses an existing output, w overwrites it, r+ "
            "writes into it",
        )
        sub.add_argument(
            "--temp-store", metavar="PATH", help="where intermediate results go"
        )
        sub.add_argument(
            "--num-threads", type=int, metavar="N", help="tasks a worker runs at once"
        )
        sub.add_argument(
            "--resume",
            action="store_true",
            help="continue an interrupted run: write into the existing output, "
            "skipping what is already there (creates it if missing)",
        )

    rechunk = commands.add_parser(
        "rechunk",
        help="rechunk a Zarr store into a new one, with bounded memory",
        epilog="example: xarray-beam rechunk era5.zarr pencils.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MB -- --runner DirectRunner",
    )
    rechunk.add_argument("source", help="path or URL of the Zarr store to rechunk")
    rechunk.add_argument("target", help="path or URL of the new store")
    add_rechunk_arguments(rechunk)
    add_output_arguments(rechunk)
    rechunk.add_argument("--zarr-format", type=int, choices=(2, 3), default=None)
    rechunk.add_argument(
        "--keep-temp", action="store_true", help="keep the temporary store"
    )
    rechunk.set_defaults(func=_rechunk)

    climatology = commands.add_parser(
        "climatology",
        help="a statistic per hour, month, day of year or season",
        epilog="example: xarray-beam climatology era5.zarr clim.zarr --by month,hour "
        "--stat mean",
    )
    climatology.add_argument("source", help="path or URL of the input Zarr store")
    climatology.add_argument("target", help="path or URL of the new store")
    climatology.add_argument(
        "--by",
        type=launch.parse_names,
        default=("month", "hour"),
        metavar="NAMES",
        help="hour, month, dayofyear, season, or several, e.g. month,hour (default)",
    )
    climatology.add_argument(
        "--stat",
        choices=("mean", "sum", "count", "min", "max", "var", "std"),
        default="mean",
    )
    climatology.add_argument(
        "--read-chunks",
        type=launch.parse_chunks,
        metavar="DIM=SIZE,...",
        help="chunks to read (default: several stored chunks along time)",
    )
    climatology.add_argument(
        "--max-mem",
        type=launch.parse_bytes,
        default=2**28,
        metavar="SIZE",
        help="partial results a worker holds before writing them out (256MiB)",
    )
    climatology.add_argument(
        "--keep-nan", action="store_true", help="let NaNs propagate (skipna=False)"
    )
    climatology.add_argument("--min-count", type=int, metavar="N")
    climatology.add_argument("--ddof", type=int, default=0)
    add_output_arguments(climatology)
    _add_storage_options(climatology)
    climatology.set_defaults(func=_climatology)

    verify = commands.add_parser(
        "verify",
        help="check that every chunk of every variable is present",
        epilog="example: xarray-beam verify pencils.zarr  (exit code 1 if incomplete)",
    )
    verify.add_argument("store", help="path or URL of a Zarr store")
    verify.add_argument(
        "--decode", action="store_true", help="also read every chunk back"
    )
    _add_storage_options(verify)
    verify.set_defaults(func=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xarray-beam``; returns the exit code.

    Example:
      ``main(['info', 'era5.zarr'])``
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, beam_args)
    except (
        ValueError,
        TypeError,
        FileExistsError,
        FileNotFoundError,
        argparse.ArgumentTypeError,
    ) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"xarray-beam {args.command}: error: {message}", file=sys.stderr)
        return _EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
