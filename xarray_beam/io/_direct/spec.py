"""How an array's chunks are stored, read from its Zarr metadata document (pure).

The direct chunk path (``chunk_codec``) decodes and encodes stored chunks
without zarr-python's codec pipeline. Whether it may do so is decided here,
from the metadata *document* the Zarr specification defines (v2 ``.zarray``,
v3 ``zarr.json``: plain JSON), never from zarr-python's Python objects, whose
shape changes between releases. Only layouts recognised exactly pass:

- Zarr v2: a native-endian numeric, boolean, datetime or timedelta dtype,
  C order, no filters, at most one compressor of a known kind, a fill value;
- Zarr v3: a regular chunk grid, a native-endian ``bytes`` codec followed by
  at most one ``zstd``, ``gzip`` or ``blosc`` codec, no storage transformers,
  no extension field that must be understood.

Anything else (sharding, transposes, checksums, filters, big-endian or
string data, a field this module has never seen) raises
``UnsupportedLayout``, which means "let zarr-python do it".

No zarr import and no I/O: this module maps JSON to a ``StoredLayout``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

_NATIVE = sys.byteorder  # 'little' or 'big'

# Top-level fields each format defines (zarr-python adds none of its own).
_V2_FIELDS = frozenset(
    {
        "zarr_format",
        "shape",
        "chunks",
        "dtype",
        "fill_value",
        "order",
        "filters",
        "dimension_separator",
        "compressor",
        "attributes",
    }
)
_V3_FIELDS = frozenset(
    {
        "zarr_format",
        "node_type",
        "shape",
        "data_type",
        "chunk_grid",
        "chunk_key_encoding",
        "fill_value",
        "codecs",
        "attributes",
        "dimension_names",
        "storage_transformers",
    }
)
_V3_CORE_TYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}
    | {"uint64", "float16", "float32", "float64", "complex64", "complex128"}
)
_V3_TIME_TYPES = {"numpy.datetime64": "M", "numpy.timedelta64": "m"}
_V3_COMPRESSOR_FIELDS = {
    "zstd": frozenset({"level", "checksum"}),
    "gzip": frozenset({"level"}),
    "blosc": frozenset({"typesize", "cname", "clevel", "shuffle", "blocksize"}),
}
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
# v2 compressors: numcodecs configurations that zarr-python hands to
# numcodecs as they are.
_V2_COMPRESSORS = frozenset({"zstd", "gzip", "zlib", "blosc", "lz4"})
_FLOAT_WORDS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class UnsupportedLayout(ValueError):
    """An array layout the direct chunk path does not recognise exactly."""


@dataclasses.dataclass(frozen=True)
class StoredLayout:
    """How one array's chunks are stored, in the terms of the Zarr spec.

    Attributes:
      zarr_format: 2 or 3.
      shape: the array's shape.
      chunks: the chunk shape (edge chunks are stored padded to it).
      dtype: the in-memory dtype, native byte order.
      fill_value: what a missing chunk (and the padding of edge chunks) holds,
        a NumPy scalar of ``dtype``.
      compressor: the one bytes-to-bytes codec as a numcodecs configuration
        (``{'id': 'zstd', 'level': 3, ...}``), or None for raw bytes.
      key_prefix: what chunk keys start with (``'c/'`` for v3's default
        encoding, ``''`` otherwise).
      separator: what joins chunk indices in a key.

    Example:
      >>> layout = read_layout({
      ...     'zarr_format': 2, 'shape': [4, 6], 'chunks': [2, 3],
      ...     'dtype': '<f4', 'fill_value': 'NaN', 'order': 'C',
      ...     'filters': None, 'compressor': {'id': 'zstd', 'level': 1},
      ... })
      >>> layout.chunk_key((1, 0)), layout.compressor
      ('1.0', {'id': 'zstd', 'level': 1})
    """

    zarr_format: Literal[2, 3]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    compressor: Mapping[str, Any] | None
    key_prefix: str
    separator: str

    def chunk_key(self, index: Sequence[int]) -> str:
        """The key of the chunk at ``index``, relative to the array.

        Example:
          >>> read_layout({
          ...     'zarr_format': 2, 'shape': [4, 6], 'chunks': [2, 3],
          ...     'dtype': '|u1', 'fill_value': 0, 'dimension_separator': '/',
          ... }).chunk_key((0, 1))
          '0/1'
        """
        if not index:  # a 0-d array has one chunk
            return self.key_prefix.rstrip(self.separator) or "0"
        return self.key_prefix + self.separator.join(str(i) for i in index)


def read_layout(metadata: Mapping[str, Any]) -> StoredLayout:
    """The ``StoredLayout`` an array's metadata document describes.

    Args:
      metadata: the parsed JSON of an array's ``.zarray`` (v2, attributes
        optionally merged in) or ``zarr.json`` (v3).

    Returns:
      The layout, if the direct chunk path recognises it exactly.

    Raises:
      UnsupportedLayout: saying what is not recognised.

    Example:
      >>> layout = read_layout({
      ...     'zarr_format': 3, 'node_type': 'array', 'shape': [4, 6],
      ...     'data_type': 'uint8', 'fill_value': 0,
      ...     'chunk_grid': {'name': 'regular',
      ...                    'configuration': {'chunk_shape': [2, 3]}},
      ...     'chunk_key_encoding': {'name': 'default'},
      ...     'codecs': [{'name': 'bytes'},
      ...                {'name': 'gzip', 'configuration': {'level': 5}}],
      ... })
      >>> layout.dtype, layout.chunks, layout.compressor, layout.chunk_key((1, 0))
      (dtype('uint8'), (2, 3), {'id': 'gzip', 'level': 5}, 'c/1/0')
    """
    if not isinstance(metadata, Mapping):
        raise UnsupportedLayout(f"metadata is a {type(metadata).__name__}, not JSON")
    fmt = metadata.get("zarr_format")
    if fmt == 2:
        return _read_v2(metadata)
    if fmt == 3:
        return _read_v3(metadata)
    raise UnsupportedLayout(f"zarr_format {fmt!r}")


def key_encoding(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """The prefix and separator of an array's chunk keys, whatever its codecs.

    Raises:
      UnsupportedLayout: for a key encoding this module does not know.

    Example:
      >>> key_encoding({'zarr_format': 2, 'dimension_separator': '/'})
      ('', '/')
    """
    if metadata.get("zarr_format") == 2:
        separator = metadata.get("dimension_separator", ".")
        if separator not in (".", "/"):
            raise UnsupportedLayout(f"dimension_separator {separator!r}")
        return "", separator
    return _v3_key_encoding(metadata.get("chunk_key_encoding"))


# Zarr v2


def _read_v2(metadata: Mapping[str, Any]) -> StoredLayout:
    _check_fields(metadata, _V2_FIELDS)
    shape = _ints(metadata.get("shape"), "shape")
    chunks = _ints(metadata.get("chunks"), "chunks")
    _check_grid(shape, chunks)
    dtype = _v2_dtype(metadata.get("dtype"))
    if metadata.get("order", "C") != "C":
        raise UnsupportedLayout(f"order {metadata.get('order')!r}")
    if metadata.get("filters"):
        raise UnsupportedLayout("filters")
    _, separator = key_encoding(metadata)
    return StoredLayout(
        zarr_format=2,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=_fill_value(metadata.get("fill_value"), dtype),
        compressor=_v2_compressor(metadata.get("compressor")),
        key_prefix="",
        separator=separator,
    )


def _v2_dtype(value: Any) -> np.dtype:
    if not isinstance(value, str):  # structured dtypes are lists
        raise UnsupportedLayout(f"dtype {value!r}")
    try:
        dtype = np.dtype(value)
    except TypeError as error:
        raise UnsupportedLayout(f"dtype {value!r}") from error
    if dtype.itemsize > 1 and dtype.byteorder not in ("=", _byteorder_char()):
        raise UnsupportedLayout(f"dtype {value!r} is not in native byte order")
    return _plain(dtype, value)


def _v2_compressor(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("id") not in _V2_COMPRESSORS:
        raise UnsupportedLayout(f"compressor {value!r}")
    return dict(value)


# Zarr v3


def _read_v3(metadata: Mapping[str, Any]) -> StoredLayout:
    _check_fields(metadata, _V3_FIELDS)
    if metadata.get("node_type", "array") != "array":
        raise UnsupportedLayout(f"node_type {metadata.get('node_type')!r}")
    if metadata.get("storage_transformers"):
        raise UnsupportedLayout("storage transformers")
    shape = _ints(metadata.get("shape"), "shape")
    chunks = _v3_chunks(metadata.get("chunk_grid"))
    _check_grid(shape, chunks)
    dtype = _v3_dtype(metadata.get("data_type"))
    compressor = _v3_codecs(metadata.get("codecs"), dtype)
    prefix, separator = _v3_key_encoding(metadata.get("chunk_key_encoding"))
    return StoredLayout(
        zarr_format=3,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=_fill_value(metadata.get("fill_value"), dtype),
        compressor=compressor,
        key_prefix=prefix,
        separator=separator,
    )


def _v3_chunks(grid: Any) -> tuple[int, ...]:
    name, config = _named(grid, "chunk_grid")
    if name != "regular" or set(config) != {"chunk_shape"}:
        raise UnsupportedLayout(f"chunk_grid {grid!r}")
    return _ints(config["chunk_shape"], "chunk_shape")


def _v3_dtype(value: Any) -> np.dtype:
    if isinstance(value, str):
        if value not in _V3_CORE_TYPES:
            raise UnsupportedLayout(f"data_type {value!r}")
        return np.dtype(value)
    name, config = _named(value, "data_type")
    kind = _V3_TIME_TYPES.get(name)
    unit = config.get("unit")
    if (
        kind is None
        or set(config) != {"unit", "scale_factor"}
        or config.get("scale_factor") != 1
        or not isinstance(unit, str)
    ):
        raise UnsupportedLayout(f"data_type {value!r}")
    try:
        dtype = np.dtype(f"{kind}8[{unit}]")
    except TypeError as error:
        raise UnsupportedLayout(f"data_type {value!r}") from error
    return _plain(dtype, value)


def _v3_codecs(codecs: Any, dtype: np.dtype) -> dict[str, Any] | None:
    if not isinstance(codecs, list | tuple) or not 1 <= len(codecs) <= 2:
        raise UnsupportedLayout(f"codecs {codecs!r}")
    name, config = _named(codecs[0], "codec")
    if name != "bytes" or not set(config) <= {"endian"}:
        raise UnsupportedLayout(f"first codec {codecs[0]!r} is not 'bytes'")
    endian = config.get("endian")
    if dtype.itemsize > 1 and endian != _NATIVE:
        raise UnsupportedLayout(f"bytes codec with endian {endian!r}")
    if len(codecs) == 1:
        return None
    name, config = _named(codecs[1], "codec")
    fields = _V3_COMPRESSOR_FIELDS.get(name)
    if fields is None or set(config) != fields:
        raise UnsupportedLayout(f"codec {codecs[1]!r}")
    if name == "blosc":
        shuffle = _BLOSC_SHUFFLE.get(config["shuffle"])
        if shuffle is None or not isinstance(config["typesize"], int):
            raise UnsupportedLayout(f"codec {codecs[1]!r}")
        return {"id": "blosc", **config, "shuffle": shuffle}
    return {"id": name, **config}


def _v3_key_encoding(encoding: Any) -> tuple[str, str]:
    name, config = _named(encoding, "chunk_key_encoding")
    if not set(config) <= {"separator"}:
        raise UnsupportedLayout(f"chunk_key_encoding {encoding!r}")
    if name == "default":
        separator = config.get("separator", "/")
        prefix = "c" + separator
    elif name == "v2":
        separator = config.get("separator", ".")
        prefix = ""
    else:
        raise UnsupportedLayout(f"chunk_key_encoding {encoding!r}")
    if separator not in (".", "/"):
        raise UnsupportedLayout(f"chunk_key_encoding {encoding!r}")
    return prefix, separator


# Shared rules


def _check_fields(metadata: Mapping[str, Any], known: frozenset[str]) -> None:
    """Refuse fields this module does not know, except v3 extension fields
    that declare they need not be understood."""
    for field in set(metadata) - known:
        value = metadata[field]
        if not (isinstance(value, Mapping) and value.get("must_understand") is False):
            raise UnsupportedLayout(f"unknown metadata field {field!r}")


def _named(value: Any, what: str) -> tuple[str, Mapping[str, Any]]:
    """A v3 ``{'name': ..., 'configuration': {...}}`` entry (or a bare name)."""
    if isinstance(value, str):
        return value, {}
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("name"), str)
        or not set(value) <= {"name", "configuration", "must_understand"}
        or not isinstance(value.get("configuration", {}), Mapping)
    ):
        raise UnsupportedLayout(f"{what} {value!r}")
    return value["name"], value.get("configuration", {})


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise UnsupportedLayout(f"{what} {value!r}")
    return tuple(value)


def _check_grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    if len(shape) != len(chunks) or not all(c >= 1 for c in chunks):
        raise UnsupportedLayout(f"chunks {chunks} for shape {shape}")


def _byteorder_char() -> str:
    return "<" if _NATIVE == "little" else ">"


def _plain(dtype: np.dtype, spelled: Any) -> np.dtype:
    """A numeric, boolean, datetime or timedelta dtype, native byte order."""
    if dtype.kind not in "biufcmM" or dtype.fields or dtype.subdtype:
        raise UnsupportedLayout(f"dtype {spelled!r}")
    return dtype.newbyteorder("=")


def _fill_value(value: Any, dtype: np.dtype) -> Any:
    """The fill value as a NumPy scalar of ``dtype``, decoded as the spec
    says (special float words, hex bit patterns, [real, imag] pairs)."""
    if value is None:
        raise UnsupportedLayout("no fill value")
    kind = dtype.kind
    if kind == "b":
        if not isinstance(value, bool):
            raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
        return np.bool_(value)
    if kind in "iumM":
        if not isinstance(value, int) or isinstance(value, bool):
            raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
        if kind in "mM":
            return np.array(value, np.int64).view(dtype)[()]
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
        return dtype.type(value)
    if kind == "f":
        return _float(value, dtype)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
    part = np.dtype(f"f{dtype.itemsize // 2}")
    return dtype.type(complex(_float(value[0], part), _float(value[1], part)))


def _float(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, bool):
        raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
    if isinstance(value, int | float):
        if math.isfinite(value) and abs(value) > np.finfo(dtype).max:
            raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
        return dtype.type(value)
    if value in _FLOAT_WORDS:
        return dtype.type(_FLOAT_WORDS[value])
    if isinstance(value, str) and value.startswith("0x"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError as error:
            raise UnsupportedLayout(f"fill_value {value!r}") from error
        if len(raw) != dtype.itemsize:
            raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
        return np.frombuffer(raw, dtype.newbyteorder(">"))[0].astype(dtype)
    raise UnsupportedLayout(f"fill_value {value!r} for {dtype}")
