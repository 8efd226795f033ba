"""The ``xarray-beam`` command: info, plan, rechunk, climatology, verify.

Beam options go after ``--``, e.g.
``xarray-beam rechunk in.zarr out.zarr --target-chunks time=-1 -- --runner
DataflowRunner --project my-project ...``.

Errors are one line on stderr: mistakes in the input exit with code 2, a
failing pipeline step (named, with the error underneath Beam's wrapping) or
any other failure with 1, Ctrl-C with 130; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from xarray_beam.io import stores, zarr_io
from xarray_beam.model import routes
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import launch

if TYPE_CHECKING:
    import xarray
    import zarr

_EXIT_FAILED = 1
_EXIT_BAD_INPUT = 2
_EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# Errors in what the user asked for (raised before any pipeline step runs).
_BAD_INPUT = (
    ValueError,
    TypeError,
    FileExistsError,
    FileNotFoundError,
    argparse.ArgumentTypeError,
)
# How Beam names the step an error happened in, at the end of its message.
_STEP = re.compile(r"\s*\[while running '(?P<step>[^']*)'\]")
_TRACEBACK = "Traceback (most recent call last):"
_VERBOSE_HELP = "show the full traceback of an error instead of one line"


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
        missing_chunks=args.missing_chunks,
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
        missing_chunks=args.missing_chunks,
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
        "rechunk, compute climatologies, verify. Beam options go after '--'. "
        "Errors are one line (exit code 2 for mistakes in the input, 1 for "
        "failures, 130 when interrupted); --verbose shows the traceback.",
        epilog="example: xarray-beam rechunk era5.zarr pencils.zarr --target-chunks "
        "time=-1,latitude=23,longitude=45 --max-mem 256MB",
    )
    _add_verbose(parser, default=False)
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
        sub.add_argument(
            "--missing-chunks",
            choices=("warn", "error", "fill"),
            default="warn",
            help="a chunk missing from the input: warn (default: read it as the "
            "fill value and say how many), error (stop), fill (read it as the "
            "fill value, quietly)",
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
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    command = f"xarray-beam {args.command}"
    try:
        with contextlib.nullcontext() if args.verbose else _quiet_step_failures():
            return args.func(args, beam_args)
    except KeyboardInterrupt:
        return _interrupted(command, args.verbose)
    except Exception as error:  # reported in one line; --verbose shows it all
        return _report(command, error, args.verbose)


def _interrupted(command: str, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"{command}: interrupted", file=sys.stderr)
    return _EXIT_INTERRUPTED


def _report(command: str, error: Exception, verbose: bool) -> int:
    """Print the one-line report of an error (after its traceback, if
    ``verbose``); returns the exit code."""
    step, underlying = _describe_error(error)
    if _is_interrupt(error, underlying):
        return _interrupted(command, verbose)
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__)
    hint = "" if verbose else " (--verbose shows the traceback)"
    if step is not None:
        line, code = f"error in step '{step}': {underlying}{hint}", _EXIT_FAILED
    elif isinstance(error, _BAD_INPUT):
        line, code = f"error: {_first_line(str(error)) or underlying}", _EXIT_BAD_INPUT
    else:
        line, code = f"error: {underlying}{hint}", _EXIT_FAILED
    print(f"{command}: {line}", file=sys.stderr)
    return code


def _describe_error(error: BaseException) -> tuple[str | None, str]:
    r"""The pipeline step an error happened in and the error itself, in one line.

    Beam reports a failing step by appending ``[while running 'Step']`` to the
    message of an exception of the same type, or of a ``RuntimeError`` when it
    cannot make one; runners with workers put the worker's traceback, as text,
    in the message of a ``RuntimeError``. This finds the step and the original
    ``Type: message`` (its first line) under any of these.

    Returns:
      The name of the step (None if the error names no step) and the error.

    Example:
      >>> _describe_error(ValueError("bad chunk [while running 'Write']"))
      ('Write', 'ValueError: bad chunk')
      >>> _describe_error(RuntimeError('Traceback (most recent call last):\n'
      ...     '  File "x.py", line 1, in f\n'
      ...     "OSError: disk full [while running 'Copy']"))
      ('Copy', 'OSError: disk full')
      >>> _describe_error(OSError('no space\nleft'))
      (None, 'OSError: no space')
    """
    for link in _chain(error):
        text = str(link)
        found = list(_STEP.finditer(text))
        if found:
            return found[-1]["step"], _underlying(link, text[: found[-1].start()])
    return None, _one_line(type(error).__name__, str(error))


def _underlying(error: BaseException, text: str) -> str:
    """``Type: message`` of the error Beam wrapped in ``error``, whose message
    without the step is ``text``."""
    if _TRACEBACK in text:  # a worker's traceback: the error follows its frames
        tail = text[text.rindex(_TRACEBACK) + len(_TRACEBACK) :]
        for line in tail.splitlines():
            if line.strip() and not line[0].isspace():
                return line.strip()
    original = error.__cause__ or error.__context__
    if original is not None:  # in this process: the error Beam caught
        only = traceback.format_exception_only(type(original), original)
        if text.strip() in (str(original).strip(), only[-1].strip()):
            return _one_line(type(original).__name__, str(original))
    return _one_line(type(error).__name__, text)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then the errors it was raised from or while handling."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _is_interrupt(error: BaseException, underlying: str) -> bool:
    """Whether the error is Ctrl-C, as Beam wraps it."""
    if any(isinstance(link, KeyboardInterrupt) for link in _chain(error)):
        return True
    name = underlying.split(":", 1)[0]
    return name == "KeyboardInterrupt" or name.endswith(".KeyboardInterrupt")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _one_line(name: str, message: str) -> str:
    first = _first_line(message)
    return f"{name}: {first}" if first else name


class _StepFailureFilter(logging.Filter):
    """Drops Beam's log records of a failing step, which the command reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            return False
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours
            return True
        return "[while running " not in text


class _StderrWithoutStepTracebacks:
    """Stderr, less the tracebacks of failing steps Beam's workers print to it
    (``multi_threading`` mode)."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._skip_newline = False

    def write(self, text: str) -> int:
        if _TRACEBACK in text and "[while running " in text:
            self._skip_newline = True  # print() writes the end of line apart
            return len(text)
        if self._skip_newline and text == "\n":
            self._skip_newline = False
            return len(text)
        self._skip_newline = False
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _quiet_step_failures() -> Iterator[None]:
    """Keep Beam from logging or printing a failing step's traceback to stderr
    (the command reports the failure in one line)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()  # as Beam's Pipeline does; the filter needs it
    handlers = list(root.handlers)
    step_failures = _StepFailureFilter()
    for handler in handlers:
        handler.addFilter(step_failures)
    stderr = cast("TextIO", _StderrWithoutStepTracebacks(sys.stderr))
    try:
        with contextlib.redirect_stderr(stderr):
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(step_failures)


if __name__ == "__main__":
    sys.exit(main())
