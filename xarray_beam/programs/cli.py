"""The ``xarray-beam`` command: info, plan, rechunk, climatology, verify.

Beam options go after ``--``, e.g.
``xarray-beam rechunk in.zarr out.zarr --target-chunks time=-1 -- --runner
DataflowRunner --project my-project ...``.

Everything the flags name is checked before anything is printed or run: the
input is a Zarr store, dimensions, variables, groupings and statistics exist
(with a suggestion for a near miss), the output may be written.

Errors are one line on stderr, in the command's words (its flags, not the
Python API's arguments): mistakes in the input exit with code 2, a failing
pipeline step (named, with the error underneath Beam's wrapping) or any
other failure with 1. Ctrl-C exits with 130 after at most three lines
saying how far the output got and how to finish. ``--verbose`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from xarray_beam.beam.climatology import STANDARD_GROUPS
from xarray_beam.io import zarr_io
from xarray_beam.programs import checks, errors, launch, progress, store_info

if TYPE_CHECKING:
    import xarray


_EXIT_BAD_INPUT = errors.EXIT_BAD_INPUT
_EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as tools killed by it exit
_VERBOSE_HELP = "show the full traceback of an error instead of one line"
STATS = ("mean", "sum", "count", "min", "max", "var", "std")
GROUPINGS = tuple(STANDARD_GROUPS)
RECHUNK_MAX_MEM = 2**30
CLIMATOLOGY_MAX_MEM = 2**28


class _Parser(argparse.ArgumentParser):
    """Reports mistakes in one line, with exit code 2."""

    def error(self, message: str):
        self.exit(_EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _add_verbose(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help=_VERBOSE_HELP
    )


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an fsspec option for gs:// or s3:// stores (repeatable), e.g. token=anon",
    )


def _storage_options(args: argparse.Namespace) -> dict[str, str] | None:
    return launch.parse_storage_options(args.storage_option)


def _info(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    options = _storage_options(args)
    checks.check_source(args.store, options)
    print(store_info.describe_store(args.store, options))
    return 0


def _open_source(source: str, options: Mapping[str, str] | None) -> xarray.Dataset:
    """The input (lazily), once it is known to be a Zarr store."""
    checks.check_source(source, options)
    kwargs = {"storage_options": dict(options)} if options else {}
    return zarr_io.open_zarr(source, **kwargs)[0]


def _check_dims(dataset: xarray.Dataset, args: argparse.Namespace) -> None:
    dims = [str(d) for d in dataset.dims]
    for flag in ("target_chunks", "target_shards", "read_chunks"):
        given = getattr(args, flag, None)
        if given:
            checks.check_names(given, dims, "dimension", _flag(flag))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _say_sizes(args: argparse.Namespace) -> None:
    """Say how sizes given in decimal units (or in none) were read."""
    for name in ("max_mem", "min_mem"):
        size = getattr(args, name, None)
        echo = size.echo(_flag(name)) if size is not None else None
        if echo:
            print(echo)


def _max_mem(args: argparse.Namespace, default: int) -> int:
    return default if args.max_mem is None else args.max_mem.nbytes


def _nbytes(size: launch.Size | None) -> int | None:
    return None if size is None else size.nbytes


def _check_output(args: argparse.Namespace, options: Mapping[str, str] | None) -> None:
    checks.check_output(
        args.source,
        args.target,
        mode=args.mode,
        resume=args.resume,
        storage_options=options,
        temp_store=args.temp_store,
    )


def _plan(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.beam import rechunk_zarr
    from xarray_beam.programs import jobs

    options = _storage_options(args)
    _check_dims(_open_source(args.source, options), args)
    plan = rechunk_zarr.plan_store_rechunk(
        args.source,
        args.target_chunks,
        _max_mem(args, RECHUNK_MAX_MEM),
        _nbytes(args.min_mem),
        method=args.method,
        target_shards=args.target_shards,
        storage_options=options,
    )
    reason = (
        "store to store through temporary stores, as `xarray-beam rechunk` runs it"
        if args.method == "storage"
        else "through Beam shuffles (Rechunk), for comparison"
    )
    _say_sizes(args)
    print(f"rechunk route: {args.method} ({reason})")
    print(jobs.describe_plan(plan, _max_mem(args, RECHUNK_MAX_MEM)))
    return 0


def _rechunk(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.programs import jobs

    options = _storage_options(args)
    _check_dims(_open_source(args.source, options), args)
    _check_output(args, options)
    _say_sizes(args)
    jobs.rechunk_job(
        args.source,
        args.target,
        args.target_chunks,
        _max_mem(args, RECHUNK_MAX_MEM),
        args.temp_store,
        beam_args=beam_args,
        storage_options=options,
        mode=args.mode,
        num_threads=args.num_threads,
        min_mem=_nbytes(args.min_mem),
        target_shards=args.target_shards,
        zarr_format=args.zarr_format,
        keep_temp=args.keep_temp,
        resume=args.resume,
        missing_chunks=args.missing_chunks,
        progress_style=args.progress,
        progress_interval=args.progress_interval,
    )
    return 0


def _climatology(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.programs import jobs

    options = _storage_options(args)
    dataset = _open_source(args.source, options)
    _check_dims(dataset, args)
    if args.variables:
        names = [str(n) for n in dataset.data_vars]
        checks.check_names(args.variables, names, "data variable", "--variables")
    if "time" not in dataset.dims:
        raise ValueError(
            f"a climatology groups along the dimension 'time', which {args.source} "
            f"does not have (its dimensions: "
            f"{', '.join(str(d) for d in dataset.dims)})"
        )
    _check_output(args, options)
    _say_sizes(args)
    jobs.climatology_job(
        args.source,
        args.target,
        args.by,
        args.stat,
        read_chunks=args.read_chunks,
        variables=args.variables,
        temp_store=args.temp_store,
        max_mem=_max_mem(args, CLIMATOLOGY_MAX_MEM),
        mode=args.mode,
        num_threads=args.num_threads,
        beam_args=beam_args,
        storage_options=options,
        resume=args.resume,
        skipna=not args.keep_nan,
        min_count=args.min_count,
        ddof=args.ddof,
        missing_chunks=args.missing_chunks,
        progress_style=args.progress,
        progress_interval=args.progress_interval,
    )
    return 0


def _verify(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from xarray_beam.io.verify import verify_zarr

    options = _storage_options(args)
    checks.check_source(args.store, options)
    report = verify_zarr(args.store, decode=args.decode, storage_options=options)
    print(report)
    return 0 if report.complete else 1


def _choice(choices: Sequence[str], what: str):
    """An argparse type that accepts one of ``choices``, suggesting the
    likely one for a near miss."""

    def parse(text: str) -> str:
        try:
            return checks.check_choice(text.strip(), choices, what)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _groupings(text: str) -> tuple[str, ...]:
    names = launch.parse_names(text)
    check = _choice(GROUPINGS, "grouping")
    return tuple(check(name) for name in names)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xarray-beam``.

    Example:
      >>> build_parser().parse_args(['info', 'era5.zarr']).store
      'era5.zarr'
    """
    parser = _Parser(
        prog="xarray-beam",
        description="Beam pipelines over Zarr stores of xarray data: inspect, plan, "
        "rechunk, compute climatologies, verify. Beam options go after '--'. "
        "Errors are one line (exit code 2 for mistakes in the input, 1 for "
        "failures, 130 when interrupted); --verbose shows the traceback. Sizes "
        "print in binary units (KiB, MiB, GiB).",
        epilog="example: xarray-beam rechunk era5.zarr pencils.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MiB",
    )
    _add_verbose(parser, default=False)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    info = commands.add_parser(
        "info",
        help="dimensions, time range, variables, units, chunks, compression and "
        "sizes of a store",
        epilog="example: xarray-beam info era5.zarr",
    )
    info.add_argument("store", help="path or URL of a Zarr store")
    _add_storage_options(info)
    info.set_defaults(func=_info)

    def add_size(sub: argparse.ArgumentParser, flag: str, help: str) -> None:
        sub.add_argument(flag, type=launch.Size.parse, metavar="SIZE", help=help)

    def add_rechunk_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target-chunks",
            type=launch.parse_chunks,
            required=True,
            metavar="DIM=SIZE,...",
            help="new chunk size per dimension, -1 for whole (others keep their "
            "chunks), e.g. time=-1,latitude=23,longitude=45",
        )
        add_size(
            sub,
            "--max-mem",
            "memory a task may hold, counting its copies, e.g. 256MiB, 1GiB, 1G "
            "(G, GB: 10^9 bytes; GiB: 2^30); default 1GiB. A worker needs its "
            "baseline (about 350 MiB) on top",
        )
        add_size(
            sub,
            "--min-mem",
            "smallest piece worth moving (adds passes to keep pieces large)",
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
        "time=-1,latitude=23,longitude=45 --max-mem 256MiB",
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
            help="w- (default) refuses an existing output, w replaces it, r+ "
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
            help="finish an interrupted run of the same command: write into the "
            "existing output, skipping what is already there (creates it if "
            "missing)",
        )
        sub.add_argument(
            "--missing-chunks",
            choices=("warn", "error", "fill"),
            default="warn",
            help="a chunk missing from the input: warn (default: read it as the "
            "fill value and say how many), error (stop), fill (read it as the "
            "fill value, quietly)",
        )
        sub.add_argument(
            "--progress",
            choices=progress.STYLES,
            default="auto",
            help="bar (redrawn in place, with the time left), lines (a plain line "
            "every 30 s, for logs), none; default auto: a bar on a terminal, "
            "lines otherwise",
        )
        # Seconds between progress lines; for tests.
        sub.add_argument(
            "--progress-interval", type=float, default=None, help=argparse.SUPPRESS
        )

    rechunk = commands.add_parser(
        "rechunk",
        help="rechunk a Zarr store into a new one, with bounded memory",
        epilog="example: xarray-beam rechunk era5.zarr pencils.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MiB -- --runner DirectRunner",
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
        type=_groupings,
        default=("month", "hour"),
        metavar="NAMES",
        help=f"{', '.join(GROUPINGS)}, or several, e.g. month,hour (default)",
    )
    climatology.add_argument(
        "--stat",
        type=_choice(STATS, "statistic"),
        default="mean",
        metavar="STAT",
        help=f"{', '.join(STATS)} (default mean)",
    )
    climatology.add_argument(
        "--variables",
        type=launch.parse_names,
        metavar="NAMES",
        help="the data variables to compute it of, e.g. 2m_temperature (default all)",
    )
    climatology.add_argument(
        "--read-chunks",
        type=launch.parse_chunks,
        metavar="DIM=SIZE,...",
        help="chunks to read (default: several stored chunks along time)",
    )
    add_size(
        climatology,
        "--max-mem",
        "partial results a worker holds before writing them out (default 256MiB)",
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
    # Also after the subcommand; SUPPRESS keeps a flag given before it.
    for sub in (info, plan, rechunk, climatology, verify):
        _add_verbose(sub, default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xarray-beam``; returns the exit code.

    Errors are reported in one line on stderr (the traceback too with
    ``--verbose``): exit code 2 for mistakes in the input, 1 for a failing
    pipeline step or any other failure, 130 for Ctrl-C.

    Example:
      ``main(['info', 'era5.zarr'])``
    """
    the_command = argv is None  # not a call from Python: this process is ours
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    command = f"xarray-beam {args.command}"
    try:
        with contextlib.nullcontext() if args.verbose else errors.quiet_step_failures():
            return args.func(args, beam_args)
    except KeyboardInterrupt as interrupt:
        return _interrupted(command, interrupt, args.verbose, the_command)
    except BrokenPipeError:  # e.g. `xarray-beam plan ... | head`
        _silence_stdout()
        return _EXIT_BROKEN_PIPE
    except Exception as error:  # reported in one line; --verbose shows it all
        if errors.is_interrupt(error):
            return _interrupted(command, error, args.verbose, the_command)
        return errors.report(command, error, args.verbose)
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()


def _silence_stdout() -> None:
    """Send what is left of stdout (and its flush at exit) nowhere: whoever
    read it (``head``) has stopped reading."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _interrupted(
    command: str, error: BaseException, verbose: bool, exit_now: bool = False
) -> int:
    """Say, in at most three lines, that Ctrl-C stopped the command, how far
    its output got and how to finish; returns the exit code, or with
    ``exit_now`` ends the process with it."""
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__)
    state = getattr(error, "state", None)
    for line in errors.interrupted_lines(command, state):
        print(line, file=sys.stderr)
    if exit_now:
        # Beam's threads may still be in the middle of bundles: Python would
        # wait for them at exit (a second Ctrl-C then prints a traceback) and
        # they would log what the interrupt broke. Chunk files are written
        # atomically, so stopping them now loses nothing.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(errors.EXIT_INTERRUPTED)
    return errors.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
