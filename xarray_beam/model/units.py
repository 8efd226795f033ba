"""Byte sizes: one way to print them, one way to read them (and to check
byte-size parameters such as ``max_mem``).

Sizes print in binary units (KiB, MiB, GiB, TiB: powers of 1024), the units
of memory; text may give either binary units or decimal ones (kB, MB, GB,
TB: powers of 1000), as users write them.
"""

from __future__ import annotations

import math
import numbers
import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_PRINTED = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(count: float) -> str:
    """A byte count as people read it, in binary units.

    Example:
      >>> format_bytes(3 * 2**20), format_bytes(1536), format_bytes(12)
      ('3.0 MiB', '1.5 KiB', '12 B')
    """
    for unit, size in _PRINTED:
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def parse_size(text: str) -> int:
    """A number of bytes from text such as '256MB', '1GiB', '1G' or '5e8'.

    Decimal units (kB, MB, GB, TB, and the short K, M, G, T, as dask reads
    them) are powers of 1000; binary ones (KiB, MiB, GiB, TiB) powers of
    1024. Case does not matter.

    Raises:
      ValueError: for anything else (including 'auto' and '').

    Example:
      >>> parse_size('256MiB'), parse_size('1.5GB'), parse_size('1G')
      (268435456, 1500000000, 1000000000)
    """
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(
            f"not a size: {text!r} (use e.g. 256MB, 256MiB, 1GiB or 500000000)"
        )
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if not math.isfinite(value) or value > 2**62:
        raise ValueError(f"size too large: {text!r}")
    if int(value) < 1:
        raise ValueError(f"size must be at least one byte: {text!r}")
    return int(value)


def byte_size(value: int | str, name: str) -> int:
    """A byte-size parameter as an int: a positive int, or text for ``parse_size``.

    Args:
      value: the number of bytes, or text such as '256MB', '1GiB' or '1G'.
      name: the parameter's name, for error messages (e.g. 'max_mem').

    Raises:
      TypeError: for anything but an int or a str (floats holding a whole
        number, such as 1e9, are accepted).
      ValueError: naming the parameter, for text that is not a size and for
        sizes under one byte.

    Example:
      >>> byte_size('256MiB', 'max_mem'), byte_size(2**30, 'max_mem')
      (268435456, 1073741824)
      >>> byte_size('4 gigs', 'max_mem')  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: max_mem: not a size: '4 gigs' ...
    """
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    if isinstance(value, float) and float(value).is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a number of bytes (an int) or a size such as '1GiB', "
            f"got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(
            f"{name} must be positive (a number of bytes, or a size such as "
            f"'1GiB'), got {value!r}"
        )
    return int(value)
