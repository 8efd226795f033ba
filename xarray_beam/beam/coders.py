"""A deterministic Beam coder for ``Key``, registered when this module loads.

Beam groups elements by their encoded bytes, so equal keys must encode
equally: offsets (and chunk indices) are written in sorted order. Indices
follow the vars, and only when the key has some, so keys with offsets encode
as they always have.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import apache_beam as beam

from xarray_beam.model.key import Key


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


beam.coders.registry.register_coder(Key, KeyCoder)
