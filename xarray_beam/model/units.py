"""Byte sizes: one way to print them, one way to read them.

Sizes print in binary units (KiB, MiB, GiB, TiB: powers of 1024), the units
of memory; text may give either binary units or decimal ones (kB, MB, GB,
TB: powers of 1000), as users write them.
"""

from __future__ import annotations

import math
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
