"""Helpers for programs that launch pipelines: runners and flag parsing."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from xarray_beam.beam import runners
from xarray_beam.model import units

runs_in_process = runners.runs_in_process


def pipeline_options(beam_args: Sequence[str]) -> tuple[PipelineOptions, str]:
    """Beam options from flags, on a runner that works the same offline.

    Without ``--runner`` we choose Beam's Python DirectRunner in this process
    (``runners.InProcessRunner``); Beam's own default first tries to
    download and start the Prism runner. A ``--runner`` given by the user is
    left alone.

    Returns:
      The options and the name of the runner they select.

    Example:
      >>> pipeline_options([])[1]
      'xarray_beam.beam.runners.InProcessRunner'
    """
    options = runners.in_process_options(list(beam_args))
    return options, options.view_as(StandardOptions).runner


def describe_runner(runner: str, beam_args: Sequence[str]) -> str:
    """A line saying which runner runs a pipeline, and whether by default.

    Example:
      >>> describe_runner('DataflowRunner', ['--runner=DataflowRunner'])
      'runner: DataflowRunner'
    """
    chosen = any(a == "--runner" or a.startswith("--runner=") for a in beam_args)
    if chosen:
        return f"runner: {runner}"
    return (
        "runner: Beam's Python DirectRunner, in this process (the default "
        "here; pass -- --runner ... for another)"
    )


def parse_bytes(text: str) -> int:
    """A number of bytes from text such as '256MB', '1GiB', '1G' or '5e8'
    (see ``units.parse_size``).

    Example:
      >>> parse_bytes('256MiB'), parse_bytes('1.5GB'), parse_bytes('1G')
      (268435456, 1500000000, 1000000000)
    """
    try:
        return units.parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclasses.dataclass(frozen=True)
class Size:
    """A size given in a flag: the text, and the bytes it was read as.

    Example:
      >>> Size.parse('1GB').nbytes
      1000000000
    """

    text: str
    nbytes: int

    @classmethod
    def parse(cls, text: str) -> Size:
        """Read a size as ``parse_bytes`` does (for argparse's ``type``)."""
        return cls(text.strip(), parse_bytes(text))

    def echo(self, flag: str) -> str | None:
        """How the size was read, when the text is not in binary units (the
        units sizes print in); None when it is.

        Example:
          >>> Size.parse('1GB').echo('--max-mem')
          'read --max-mem 1GB as 953.7 MiB (kB, MB, GB: powers of 1000; ...)'
          >>> Size.parse('256MiB').echo('--max-mem') is None
          True
        """
        if self.text.lower().endswith("ib"):
            return None
        decimal = any(c in "kKmMgGtT" for c in self.text)
        note = " (kB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024)"
        return (
            f"read {flag} {self.text} as {units.format_bytes(self.nbytes)}"
            f"{note if decimal else ''}"
        )


def parse_chunks(text: str) -> dict[str, int]:
    """Chunk sizes from text such as 'time=-1,latitude=23,longitude=45'.

    Example:
      >>> parse_chunks('time=-1, latitude=23')
      {'time': -1, 'latitude': 23}
    """
    result = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            size = int(value)
        except ValueError:
            size = None
        if not sep or not name or size is None or (size <= 0 and size != -1):
            raise argparse.ArgumentTypeError(
                f"bad chunk spec {part.strip()!r}: use dim=size with a positive "
                f"size or -1, e.g. time=-1,latitude=23"
            )
        result[name] = size
    if not result:
        raise argparse.ArgumentTypeError("no chunk sizes given, e.g. time=-1")
    return result


def parse_names(text: str) -> tuple[str, ...]:
    """Names from comma-separated text.

    Example:
      >>> parse_names('month,hour')
      ('month', 'hour')
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


def parse_storage_options(pairs: Sequence[str] | None) -> dict[str, str] | None:
    """fsspec options from 'key=value' flags (None if there are none)."""
    if not pairs:
        return None
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {pair!r}")
        result[key] = value
    return result
