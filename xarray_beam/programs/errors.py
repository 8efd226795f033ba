"""Errors of the ``xarray-beam`` command, reported in one line.

Beam wraps an error raised in a pipeline step: it appends
``[while running 'Step']`` to the message, re-raises it as another type when
it must, and logs or prints the traceback. This module finds the step and the
original error under all of that (``describe_error``), recognises Ctrl-C
however Beam wrapped it (``is_interrupt``), keeps Beam's own report of a
failing step off stderr (``quiet_step_failures``), and rewords the Python
API's names of options as the command's flags (``in_flag_words``).

``report`` prints an error in one line with its exit code (1: a failure,
2: a mistake in the input); ``interrupted_lines`` says, in at most three
lines, how far the output of a job stopped by Ctrl-C got (exit code 130).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO, cast

from xarray_beam.model.units import format_bytes

if TYPE_CHECKING:
    from xarray_beam.programs.jobs import OutputState

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# Errors in what the user asked for (raised before any pipeline step runs).
BAD_INPUT = (
    ValueError,
    TypeError,
    FileExistsError,
    FileNotFoundError,
    argparse.ArgumentTypeError,
)

# How Beam names the step an error happened in, at the end of its message.
_STEP = re.compile(r"\s*\[while running '(?P<step>[^']*)'\]")
_TRACEBACK = "Traceback (most recent call last):"
# The Python API's words for options, and the flags that set them.
_FLAG_WORDS = (
    (re.compile(r"\bmode='w'"), "--mode w"),
    (re.compile(r"\bmode='r\+'"), "--mode r+"),
    (re.compile(r"\bmode='w-'"), "--mode w-"),
    (re.compile(r"\bresume=True\b"), "--resume"),
    (re.compile(r"\bneeds_setup=False\b"), "--mode r+"),
    (re.compile(r"\bmax_mem\b"), "--max-mem"),
    (re.compile(r"\bmin_mem\b"), "--min-mem"),
    (re.compile(r"\btarget_chunks\b"), "--target-chunks"),
    (re.compile(r"\btarget_shards\b"), "--target-shards"),
    (re.compile(r"\bread_chunks\b"), "--read-chunks"),
    (re.compile(r"\btemp_store\b"), "--temp-store"),
    (re.compile(r"\bkeep_temp\b"), "--keep-temp"),
    (re.compile(r"\bmissing_chunks\b"), "--missing-chunks"),
    (re.compile(r"\bzarr_format\b"), "--zarr-format"),
)


def in_flag_words(message: str) -> str:
    """A Python API error message with option names replaced by the command's
    flags (``mode='w'`` becomes ``--mode w``, ``max_mem`` ``--max-mem``).

    Example:
      >>> in_flag_words("a store exists; pass mode='w' to overwrite it")
      'a store exists; pass --mode w to overwrite it'
    """
    for pattern, flag in _FLAG_WORDS:
        message = pattern.sub(flag, message)
    return message


def describe_error(error: BaseException) -> tuple[str | None, str]:
    r"""The pipeline step an error happened in and the error itself, in one line.

    Beam reports a failing step by appending ``[while running 'Step']`` to the
    message of an exception of the same type, or of a ``RuntimeError`` when it
    cannot make one; runners with workers put the worker's traceback, as text,
    in the message of a ``RuntimeError``. This finds the step and the original
    ``Type: message`` (its first line) under any of these.

    Returns:
      The name of the step (None if the error names no step) and the error.

    Example:
      >>> describe_error(ValueError("bad chunk [while running 'Write']"))
      ('Write', 'ValueError: bad chunk')
      >>> describe_error(RuntimeError('Traceback (most recent call last):\n'
      ...     '  File "x.py", line 1, in f\n'
      ...     "OSError: disk full [while running 'Copy']"))
      ('Copy', 'OSError: disk full')
      >>> describe_error(OSError('no space\nleft'))
      (None, 'OSError: no space')
    """
    for link in _chain(error):
        text = str(link)
        found = list(_STEP.finditer(text))
        if found:
            return found[-1]["step"], _underlying(link, text[: found[-1].start()])
    return None, one_line(type(error).__name__, str(error))


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
            return one_line(type(original).__name__, str(original))
    return one_line(type(error).__name__, text)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then the errors it was raised from or while handling."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def interrupted_lines(command: str, state: OutputState | None) -> list[str]:
    """What the command says when Ctrl-C stops it (at most three lines).

    Example:
      >>> from xarray_beam.programs.jobs import OutputState
      >>> state = OutputState('p.zarr', 37, 120, 'p.zarr.tmp', 3 * 2**30, True)
      >>> for line in interrupted_lines('xarray-beam rechunk', state):
      ...     print(line)
      xarray-beam rechunk: interrupted: 37 of 120 chunks written to p.zarr; ...
      run the same command with --resume to finish, or delete both to start afresh
    """
    if state is None:
        return [f"{command}: interrupted"]
    if state.written is not None:
        done = f"{state.written} of {state.expected} chunks written to {state.target}"
    elif state.exists:
        done = f"the setup of {state.target} had begun"
    else:
        done = f"nothing written to {state.target} yet"
    leftovers = [state.target] if state.exists else []
    if state.temp is not None:
        done += (
            f"; temporary data in {state.temp} ({format_bytes(state.temp_bytes or 0)})"
        )
        leftovers.append(state.temp)
    if not leftovers:
        return [f"{command}: interrupted before anything was written"]
    delete = "both" if len(leftovers) == 2 else leftovers[0]
    return [
        f"{command}: interrupted: {done}",
        f"run the same command with --resume to finish, or delete {delete} to "
        f"start afresh",
    ]


def report(command: str, error: Exception, verbose: bool) -> int:
    """Print the one-line report of an error (after its traceback, if
    ``verbose``), in the command's words; returns the exit code: 1 for a
    failing pipeline step or another failure, 2 for a mistake in the input.

    Example:
      ``sys.exit(report('xarray-beam info', error, verbose=False))``
    """
    step, underlying = describe_error(error)
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__)
    hint = "" if verbose else " (--verbose shows the traceback)"
    if step is not None:
        line, code = f"error in step '{step}': {underlying}{hint}", EXIT_FAILED
    elif isinstance(error, BAD_INPUT):
        message = first_line(str(error)) or underlying
        line, code = f"error: {message}", EXIT_BAD_INPUT
    else:
        line, code = f"error: {underlying}{hint}", EXIT_FAILED
    print(f"{command}: {in_flag_words(line)}", file=sys.stderr)
    return code


def is_interrupt(error: BaseException) -> bool:
    """Whether an error is Ctrl-C, however Beam wrapped it.

    Example:
      >>> is_interrupt(RuntimeError("KeyboardInterrupt [while running 'Copy']"))
      True
      >>> is_interrupt(ValueError('bad chunk'))
      False
    """
    if any(isinstance(link, KeyboardInterrupt) for link in _chain(error)):
        return True
    # 'KeyboardInterrupt', or 'RuntimeError: KeyboardInterrupt' when Beam
    # could not make another KeyboardInterrupt with the step in its message.
    names = describe_error(error)[1].split(":")[:2]
    return any(n.strip().split(".")[-1] == "KeyboardInterrupt" for n in names)


def first_line(text: str) -> str:
    """The first line of text that is not blank, stripped.

    Example:
      >>> first_line('\\n  no space left\\n on device')
      'no space left'
    """
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def one_line(name: str, message: str) -> str:
    """``Type: first line of the message`` (or the type alone).

    Example:
      >>> one_line('OSError', 'disk full\\nmore'), one_line('KeyboardInterrupt', '')
      ('OSError: disk full', 'KeyboardInterrupt')
    """
    first = first_line(message)
    return f"{name}: {first}" if first else name


class _StepFailureFilter(logging.Filter):
    """Drops Beam's log records of a failing step (which the command reports),
    of Ctrl-C, and every record once Ctrl-C was pressed (``interrupted``)."""

    def __init__(self, interrupted: threading.Event):
        super().__init__()
        self._interrupted = interrupted

    def filter(self, record: logging.LogRecord) -> bool:
        if self._interrupted.is_set():
            return False
        failure = record.exc_info[1] if record.exc_info else None
        if failure is not None and is_interrupt(failure):
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
def quiet_step_failures() -> Iterator[None]:
    """Keep Beam's reports of a failing step (its log records and the
    tracebacks its workers print) off stderr, since the command reports the
    failure in one line; after Ctrl-C, keep everything Beam's threads log or
    raise while they wind down off it too.

    Example:
      ``with quiet_step_failures(): pipeline.run().wait_until_finish()``
    """
    interrupted = threading.Event()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()  # as Beam's Pipeline does; the filter needs it
    handlers = list(root.handlers)
    step_failures = _StepFailureFilter(interrupted)
    for handler in handlers:
        handler.addFilter(step_failures)
    stderr = cast("TextIO", _StderrWithoutStepTracebacks(sys.stderr))
    previous_hook = threading.excepthook

    def thread_ended(args: Any) -> None:
        if interrupted.is_set() or is_interrupt(args.exc_value):
            return
        previous_hook(args)

    threading.excepthook = thread_ended
    handles_sigint = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if handles_sigint:

        def on_sigint(number: int, frame: Any) -> None:
            interrupted.set()
            signal.default_int_handler(number, frame)

        signal.signal(signal.SIGINT, on_sigint)
    try:
        with contextlib.redirect_stderr(stderr):
            yield
    except BaseException as error:
        if is_interrupt(error):
            interrupted.set()
        raise
    finally:
        if handles_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.excepthook = previous_hook
        for handler in handlers:
            handler.removeFilter(step_failures)
