"""Beam coders for the values this package moves, registered when it loads.

``KeyCoder``: a deterministic coder for ``Key``.

Beam groups elements by their encoded bytes, so equal keys must encode
equally: offsets (and chunk indices) are written in sorted order. Indices
follow the vars, and only when the key has some, so keys with offsets encode
as they always have.

``DatasetCoder`` and ``PartialCoder``: chunks and partial results travel
pickled, as Beam's default coder would send them, but their sizes come from
``nbytes``. Beam samples element sizes for its metrics (the first ten
elements of every step's output, then about ten per doubling), and its
default coder measures a size by pickling the element: on a climatology of
2 GB that pickled a gigabyte of chunks only to count bytes, a quarter of
the run.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import xarray

from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Partial

# Overhead of a pickled chunk beyond its arrays' bytes (names, attributes,
# coordinates' metadata); only Beam's size metrics use it.
_PICKLE_OVERHEAD = 1024


class KeyCoder(beam.coders.Coder):
    """Deterministic Beam coder for ``Key`` (dimensions encoded in sorted order)."""

    def encode(self, key: Key) -> bytes:
        parts = [_encode_ints(key.offsets)]
        if key.vars is None:
            parts.append(_encode_varint(0))
        else:
            parts.append(_encode_varint(len(key.vars) + 1))
            parts.extend(_encode_str(name) for name in sorted(key.vars))
        if key.indices:
            parts.append(_encode_ints(key.indices))
        return b"".join(parts)

    def decode(self, encoded: bytes) -> Key:
        offsets, pos = _decode_ints(encoded, 0)
        count, pos = _decode_varint(encoded, pos)
        vars = None
        if count:
            names = []
            for _ in range(count - 1):
                name, pos = _decode_str(encoded, pos)
                names.append(name)
            vars = frozenset(names)
        indices: dict[str, int] = {}
        if pos < len(encoded):
            indices, pos = _decode_ints(encoded, pos)
        return Key(offsets, vars, indices)

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return Key

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


def _encode_ints(values: Mapping[str, int]) -> bytes:
    parts = [_encode_varint(len(values))]
    for dim, value in sorted(values.items()):
        parts.append(_encode_str(dim))
        parts.append(struct.pack(">q", value))
    return b"".join(parts)


def _decode_ints(data: bytes, pos: int) -> tuple[dict[str, int], int]:
    count, pos = _decode_varint(data, pos)
    values = {}
    for _ in range(count):
        dim, pos = _decode_str(data, pos)
        (values[dim],) = struct.unpack_from(">q", data, pos)
        pos += 8
    return values, pos


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _encode_varint(len(raw)) + raw


def _decode_str(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = _decode_varint(data, pos)
    return data[pos : pos + size].decode("utf-8"), pos + size


class _PickledBySize(beam.coders.Coder):
    """Pickles values; estimates their size from ``nbytes`` without pickling."""

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def estimate_size(self, value: Any) -> int:
        return int(getattr(value, "nbytes", 0)) + _PICKLE_OVERHEAD

    def is_deterministic(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class DatasetCoder(_PickledBySize):
    """Beam coder for ``xarray.Dataset`` chunks: pickled; sized by ``nbytes``.

    Example:
      >>> import numpy as np
      >>> chunk = xarray.Dataset({'t': ('x', np.zeros(1000))})
      >>> coder = DatasetCoder()
      >>> coder.decode(coder.encode(chunk)).identical(chunk)
      True
      >>> coder.estimate_size(chunk) >= chunk.nbytes
      True
    """

    def to_type_hint(self):
        return xarray.Dataset


class PartialCoder(_PickledBySize):
    """Beam coder for ``Partial`` results of reductions: pickled; sized by
    ``nbytes``."""

    def to_type_hint(self):
        return Partial


KEYED_DATASET = beam.typehints.Tuple[Key, xarray.Dataset]
"""Element type of ``(Key, xarray.Dataset)`` PCollections."""

KEYED_PARTIAL = beam.typehints.Tuple[Key, Partial]
"""Element type of ``(Key, Partial)`` PCollections."""

beam.coders.registry.register_coder(Key, KeyCoder)
beam.coders.registry.register_coder(xarray.Dataset, DatasetCoder)
beam.coders.registry.register_coder(Partial, PartialCoder)
