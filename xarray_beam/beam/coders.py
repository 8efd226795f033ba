"""A deterministic Beam coder for ``Key``, registered when this module loads.

Beam groups elements by their encoded bytes, so equal keys must encode
equally: offsets are written in sorted order.
"""

from __future__ import annotations

import struct

import apache_beam as beam

from xarray_beam.model.key import Key


class KeyCoder(beam.coders.Coder):
    """Deterministic Beam coder for ``Key`` (offsets encoded in sorted order)."""

    def encode(self, key: Key) -> bytes:
        parts = [_encode_varint(len(key.offsets))]
        for dim, offset in sorted(key.offsets.items()):
            parts.append(_encode_str(dim))
            parts.append(struct.pack(">q", offset))
        if key.vars is None:
            parts.append(_encode_varint(0))
        else:
            parts.append(_encode_varint(len(key.vars) + 1))
            parts.extend(_encode_str(name) for name in sorted(key.vars))
        return b"".join(parts)

    def decode(self, encoded: bytes) -> Key:
        pos = 0
        count, pos = _decode_varint(encoded, pos)
        offsets = {}
        for _ in range(count):
            dim, pos = _decode_str(encoded, pos)
            (offsets[dim],) = struct.unpack_from(">q", encoded, pos)
            pos += 8
        count, pos = _decode_varint(encoded, pos)
        vars = None
        if count:
            names = []
            for _ in range(count - 1):
                name, pos = _decode_str(encoded, pos)
                names.append(name)
            vars = frozenset(names)
        return Key(offsets, vars)

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return Key

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


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
