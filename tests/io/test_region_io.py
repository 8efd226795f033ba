"""Specification of reading and writing Zarr chunks without zarr's pipeline.

``RegionIO`` (with ``chunk_codec``, ``chunk_files`` and ``buffers``) must read
whatever zarr writes, and write exactly the objects zarr writes for the same
data, on a local disk or any other zarr store. Plain zarr reads and writes are
the oracle throughout.
"""

import asyncio
import errno
import fcntl
import gc
import os
import shutil
import tempfile
import weakref

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.buffer import default_buffer_prototype
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)

from xarray_beam.io import region_io
from xarray_beam.io._direct import buffers, chunk_files
from xarray_beam.io._direct import codec as chunk_codec
from xarray_beam.io.compat import run

_O_DIRECT = getattr(os, "O_DIRECT", 0)
needs_o_direct = pytest.mark.skipif(not _O_DIRECT, reason="no O_DIRECT here")

# RegionIO on temporary arrays.

SHAPE = (7, 10)
CHUNKS = (3, 4)
# Whole-chunk regions tiling SHAPE, including the padded edge chunks.
WHOLE_CHUNK_REGIONS = [
    (slice(r0, r1), slice(c0, c1))
    for r0, r1 in ((0, 3), (3, 6), (6, 7))
    for c0, c1 in ((0, 8), (8, 10))
]
READ_REGIONS = [
    (slice(0, 7), slice(0, 10)),
    (slice(1, 5), slice(2, 9)),
    (slice(6, 7), slice(9, 10)),
    (slice(0, 1), slice(0, 1)),
    (slice(2, 7), slice(3, 5)),
    (slice(3, 6), slice(4, 8)),
]
DTYPES = [np.float32, np.int16, np.float64]


def _fill_value(dtype):
    kind = np.dtype(dtype).kind
    if kind in "mM":
        return np.array("NaT", dtype)[()]
    return np.nan if kind == "f" else -1


def _temp_array(tmp_path, dtype, shape=SHAPE, chunks=CHUNKS) -> zarr.Array:
    group = zarr.open_group(str(tmp_path / "temp.zarr"), mode="w", zarr_format=3)
    region_io.create(group, "a", shape, chunks, np.dtype(dtype), _fill_value(dtype))
    return group["a"]


def _random(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape) * 1000
    if np.dtype(dtype).kind in "mM":
        return values.astype(np.int64).astype(dtype)
    return values.astype(dtype)


def _read(io: region_io.RegionIO, region) -> np.ndarray:
    out = np.empty(tuple(s.stop - s.start for s in region), io.array.dtype)
    io.read(region, out)
    return out


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_region_io_round_trips_whole_chunk_writes_and_any_reads(
    tmp_path, dtype, direct, concurrency
):
    array = _temp_array(tmp_path, dtype)
    io = region_io.RegionIO(array, concurrency, direct=direct)
    assert io.direct == direct
    expected = _random(SHAPE, dtype)

    for region in WHOLE_CHUNK_REGIONS:
        io.write(region, expected[region].copy())

    for region in READ_REGIONS:
        np.testing.assert_array_equal(_read(io, region), expected[region], str(region))
    reopened = zarr.open_group(str(tmp_path / "temp.zarr"), mode="r")["a"]
    np.testing.assert_array_equal(reopened[...], expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_region_io_direct_and_zarr_paths_agree(tmp_path, dtype):
    expected = _random(SHAPE, dtype, seed=5)
    results = {}
    for direct in (True, False):
        array = _temp_array(tmp_path / str(direct), dtype)
        io = region_io.RegionIO(array, 2, direct=direct)
        io.write((slice(0, 7), slice(0, 10)), expected)
        results[direct] = [_read(io, region) for region in READ_REGIONS]
        # each path reads what the other wrote
        other = region_io.RegionIO(array, 2, direct=not direct)
        np.testing.assert_array_equal(_read(other, READ_REGIONS[0]), expected)

    for direct_part, zarr_part in zip(results[True], results[False], strict=True):
        np.testing.assert_array_equal(direct_part, zarr_part)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_region_io_reads_missing_chunks_as_the_fill_value(tmp_path, dtype, direct):
    array = _temp_array(tmp_path, dtype)
    io = region_io.RegionIO(array, 2, direct=direct)
    written = _random((3, 8), dtype)
    io.write((slice(3, 6), slice(0, 8)), written)
    expected = np.full(SHAPE, _fill_value(dtype), dtype)
    expected[3:6, 0:8] = written

    np.testing.assert_array_equal(_read(io, (slice(0, 7), slice(0, 10))), expected)
    np.testing.assert_array_equal(
        _read(io, (slice(5, 7), slice(7, 10))), expected[5:7, 7:10]
    )


@pytest.mark.parametrize(
    "region",
    [
        (slice(0, 2), slice(0, 4)),
        (slice(0, 3), slice(1, 4)),
        (slice(3, 7), slice(0, 6)),
        (slice(6, 7), slice(8, 9)),
    ],
    ids=["short_rows", "offset_cols", "half_chunk_cols", "part_of_edge"],
)
def test_region_io_direct_write_rejects_regions_of_partial_chunks(tmp_path, region):
    array = _temp_array(tmp_path, np.float32)
    io = region_io.RegionIO(array, 1, direct=True)
    data = np.zeros(tuple(s.stop - s.start for s in region), np.float32)

    with pytest.raises(ValueError, match="whole chunks"):
        io.write(region, data)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr"])
def test_region_io_handles_strided_buffers_with_many_rows(tmp_path, direct):
    shape, chunks = (2300, 3), (1100, 2)
    array = _temp_array(tmp_path, np.float32, shape, chunks)
    io = region_io.RegionIO(array, 2, direct=direct)
    expected = _random(shape, np.float32, seed=6)

    io.write((slice(0, 2300), slice(0, 3)), np.asfortranarray(expected))
    wide = np.zeros((1500, 6), np.float32)
    io.read((slice(500, 2000), slice(0, 3)), wide[:, ::2])
    rows = np.zeros((2300, 5), np.float32)
    io.read((slice(0, 2300), slice(0, 2)), rows[:, 1:3])

    np.testing.assert_array_equal(wide[:, ::2], expected[500:2000])
    np.testing.assert_array_equal(wide[:, 1::2], 0)
    np.testing.assert_array_equal(rows[:, 1:3], expected[:, 0:2])
    np.testing.assert_array_equal(rows[:, [0, 3, 4]], 0)
    reopened = zarr.open_group(str(tmp_path / "temp.zarr"), mode="r")["a"]
    np.testing.assert_array_equal(reopened[...], expected)


# Array layouts, as zarr.create_array arguments.

SUPPORTED = {
    "v3-none": dict(zarr_format=3, compressors=None),
    "v3-zstd": dict(zarr_format=3, compressors=ZstdCodec(level=3)),
    "v3-gzip": dict(zarr_format=3, compressors=GzipCodec(level=5)),
    "v3-blosc": dict(
        zarr_format=3,
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
    ),
    "v2-none": dict(zarr_format=2, compressors=None),
    "v2-zstd": dict(zarr_format=2, compressors=numcodecs.Zstd(level=3)),
    "v2-gzip": dict(zarr_format=2, compressors=numcodecs.GZip(level=5)),
    "v2-blosc": dict(
        zarr_format=2,
        compressors=numcodecs.Blosc(cname="zstd", clevel=3, shuffle=1),
    ),
    "v2-slash-none": dict(
        zarr_format=2,
        compressors=None,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    ),
    "v2-slash-zstd": dict(
        zarr_format=2,
        compressors=numcodecs.Zstd(level=1),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    ),
}
UNSUPPORTED = {
    "v3-sharded": dict(zarr_format=3, shards=(6, 8), compressors=None),
    "v3-two-compressors": dict(zarr_format=3, compressors=[ZstdCodec(), GzipCodec()]),
    "v3-big-endian": dict(
        zarr_format=3, serializer=BytesCodec(endian="big"), compressors=None
    ),
    "v3-checksum": dict(zarr_format=3, compressors=Crc32cCodec()),
    "v3-transpose": dict(zarr_format=3, filters=[TransposeCodec(order=(1, 0))]),
    "v3-string": dict(zarr_format=3, dtype=str),
    "v2-filters": dict(zarr_format=2, filters=[numcodecs.Delta(dtype="<f4")]),
    "v2-big-endian": dict(zarr_format=2, dtype=">f4"),
    "v2-fortran-order": dict(zarr_format=2, order="F"),
    "v2-string": dict(zarr_format=2, dtype=str),
    "v2-no-fill-value": dict(zarr_format=2, fill_value=None),
}
STORES = ["local", "memory"]


def _compressed(layout: str) -> bool:
    return not layout.endswith("-none")


def _new_store(kind: str, tmp_path, name: str):
    if kind == "local":
        return zarr.storage.LocalStore(str(tmp_path / name))
    if kind == "fsspec":
        return zarr.storage.FsspecStore.from_url(f"memory://{tmp_path.name}/{name}")
    return zarr.storage.MemoryStore({})


def _create(store, layout: dict, shape=SHAPE, chunks=CHUNKS, dtype=np.float32):
    kwargs = dict(shape=shape, chunks=chunks, dtype=dtype)
    if "fill_value" not in layout and np.dtype(layout.get("dtype", dtype)).kind != "U":
        kwargs["fill_value"] = _fill_value(dtype)
    return zarr.create_array(store, name="a", **(kwargs | layout))


def _objects(store) -> dict[str, bytes]:
    """Every object of a store (metadata and chunks) as key -> bytes.

    A gzip stream's header holds the second it was written (MTIME, bytes 4
    to 8); that is zeroed, so writes a second apart compare equal.
    """

    async def everything():
        prototype = default_buffer_prototype()
        return {
            key: _without_gzip_time((await store.get(key, prototype)).to_bytes())
            async for key in store.list()
        }

    return run(everything())


def _without_gzip_time(data: bytes) -> bytes:
    if data[:3] == b"\x1f\x8b\x08":
        return data[:4] + bytes(4) + data[8:]
    return data


def _chunk_keys(objects: dict[str, bytes]) -> set[str]:
    return {
        k for k in objects if not k.endswith((".json", ".zarray", ".zattrs", ".zgroup"))
    }


def _whole(shape) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in shape)


# chunk_codec.for_array


@pytest.mark.parametrize("layout", SUPPORTED)
def test_chunk_codec_supports_plain_and_singly_compressed_layouts(tmp_path, layout):
    array = _create(_new_store("local", tmp_path, "s.zarr"), SUPPORTED[layout])

    codec = chunk_codec.for_array(array)

    assert codec is not None
    assert codec.chunks == CHUNKS
    assert codec.dtype == np.dtype(np.float32)
    assert np.isnan(codec.fill_value)
    assert (codec.compressor is not None) == _compressed(layout)


@pytest.mark.parametrize("layout", UNSUPPORTED)
def test_chunk_codec_leaves_other_layouts_to_zarr(tmp_path, layout):
    array = _create(_new_store("local", tmp_path, "s.zarr"), UNSUPPORTED[layout])

    assert chunk_codec.for_array(array) is None
    assert not region_io.RegionIO(array, 2).direct


@pytest.mark.parametrize("layout", SUPPORTED)
def test_chunk_codec_decodes_and_encodes_exactly_what_zarr_stores(layout):
    store = zarr.storage.MemoryStore({})
    array = _create(store, SUPPORTED[layout], dtype=np.int16)
    data = _random(SHAPE, np.int16, seed=1)
    array[...] = data
    padded = np.full((9, 12), -1, np.int16)  # the chunk grid, edges padded
    padded[:7, :10] = data
    codec = chunk_codec.for_array(array)
    stored = _objects(store)

    for index in np.ndindex(3, 3):
        chunk = padded[index[0] * 3 : index[0] * 3 + 3, index[1] * 4 : index[1] * 4 + 4]
        data_bytes = stored["a/" + codec.key(index)]
        out = np.zeros(CHUNKS, np.int16)
        codec.decode_into(data_bytes, out)
        np.testing.assert_array_equal(out, chunk, str(index))
        encoded = bytes(codec.encode(np.ascontiguousarray(chunk)))
        assert _without_gzip_time(encoded) == data_bytes


# Which arrays take the direct path.


@pytest.mark.parametrize("kind", ["local", "memory", "fsspec"])
@pytest.mark.parametrize("layout", ["v3-none", "v3-zstd", "v2-blosc", "v2-slash-none"])
def test_region_io_is_direct_for_supported_layouts_on_any_store(tmp_path, layout, kind):
    array = _create(_new_store(kind, tmp_path, "s.zarr"), SUPPORTED[layout])
    data = _random(SHAPE, np.float32)

    io = region_io.RegionIO(array, 2)
    io.write(_whole(SHAPE), data)

    assert io.direct
    assert not region_io.RegionIO(array, 2, direct=False).direct
    np.testing.assert_array_equal(array[...], data)
    np.testing.assert_array_equal(_read(io, READ_REGIONS[1]), data[READ_REGIONS[1]])


@pytest.mark.parametrize(
    "layout, kind, uses_files",
    [
        ("v3-none", "local", True),
        ("v2-slash-none", "local", True),
        ("v3-zstd", "local", False),
        ("v2-none", "memory", False),
    ],
)
def test_region_io_moves_only_local_uncompressed_chunks_as_plain_files(
    tmp_path, monkeypatch, layout, kind, uses_files
):
    calls = []
    real_read, real_write = chunk_files.ChunkFiles.read, chunk_files.ChunkFiles.write

    def spy_read(self, *args, **kwargs):
        calls.append("read")
        return real_read(self, *args, **kwargs)

    def spy_write(self, *args, **kwargs):
        calls.append("write")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(chunk_files.ChunkFiles, "read", spy_read)
    monkeypatch.setattr(chunk_files.ChunkFiles, "write", spy_write)
    array = _create(_new_store(kind, tmp_path, "s.zarr"), SUPPORTED[layout])
    data = _random(SHAPE, np.float32)
    io = region_io.RegionIO(array, 2)

    io.write(_whole(SHAPE), data)
    np.testing.assert_array_equal(_read(io, _whole(SHAPE)), data)

    assert set(calls) == ({"read", "write"} if uses_files else set())
    np.testing.assert_array_equal(array[...], data)


# Round trips against zarr, and the stored objects zarr would write.


def _round_trip_params():
    params = []
    for layout in SUPPORTED:
        for dtype in [np.float32, np.int16, np.float64, "datetime64[s]"]:
            params.append(
                pytest.param(layout, SHAPE, CHUNKS, dtype, id=f"{layout}-{dtype}")
            )
        params.append(
            pytest.param(
                layout, (5, 6, 7), (2, 4, 3), np.float32, id=f"{layout}-3d-ragged"
            )
        )
    return params


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("layout, shape, chunks, dtype", _round_trip_params())
def test_region_io_writes_and_reads_what_zarr_does(
    tmp_path, kind, layout, shape, chunks, dtype
):
    by_zarr = _create(
        _new_store(kind, tmp_path, "zarr.zarr"), SUPPORTED[layout], shape, chunks, dtype
    )
    by_io = _create(
        _new_store(kind, tmp_path, "io.zarr"), SUPPORTED[layout], shape, chunks, dtype
    )
    data = _random(shape, dtype, seed=2)
    by_zarr[...] = data
    io = region_io.RegionIO(by_io, 3)
    assert io.direct
    if len(shape) == 2:
        for region in WHOLE_CHUNK_REGIONS:
            io.write(region, data[region].copy())
    else:
        io.write(_whole(shape), data)

    # zarr reads what RegionIO wrote, object for object the same as its own
    np.testing.assert_array_equal(by_io[...], data)
    assert _objects(by_io.store) == _objects(by_zarr.store)
    # RegionIO reads what zarr wrote
    reader = region_io.RegionIO(by_zarr, 3)
    np.testing.assert_array_equal(_read(reader, _whole(shape)), data)
    part = tuple(slice(1, n - 1) for n in shape)
    np.testing.assert_array_equal(_read(reader, part), data[part])


# Reads of any region.

READ_LAYOUTS = ["v3-none", "v3-zstd", "v2-gzip", "v2-blosc", "v2-slash-none"]


def _targets(shape, dtype):
    """Buffers of ``shape`` to read into, with a name and what surrounds them."""
    h, w = shape
    wide = np.full((h, 2 * w), 77, dtype)
    tall = np.full((2 * h + 1, w + 2), 77, dtype)
    flipped = np.full(shape, 77, dtype)
    return {
        "contiguous": (np.full(shape, 77, dtype), None),
        "every_other_column": (wide[:, ::2], wide[:, 1::2]),
        "every_other_row": (tall[1::2, 1:-1], tall[::2]),
        "reversed": (flipped[::-1, ::-1], None),
        "fortran": (np.asfortranarray(np.full(shape, 77, dtype)), None),
        "float64": (np.full(shape, 77, np.float64), None),
    }


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("layout", READ_LAYOUTS)
def test_region_io_reads_any_region_into_strided_buffers(tmp_path, layout, kind):
    array = _create(_new_store(kind, tmp_path, "s.zarr"), SUPPORTED[layout])
    data = _random(SHAPE, np.float32, seed=3)
    array[...] = data
    io = region_io.RegionIO(array, 2)
    assert io.direct

    for region in READ_REGIONS:
        shape = tuple(s.stop - s.start for s in region)
        for name, (target, around) in _targets(shape, np.float32).items():
            io.read(region, target)
            np.testing.assert_array_equal(target, data[region], f"{region} {name}")
            if around is not None:
                np.testing.assert_array_equal(around, 77, f"{region} {name}")


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("layout", READ_LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.int16], ids=["float32", "int16"])
def test_region_io_reads_missing_chunks_of_any_layout_as_the_fill_value(
    tmp_path, layout, kind, dtype
):
    array = _create(
        _new_store(kind, tmp_path, "s.zarr"), SUPPORTED[layout], dtype=dtype
    )
    array[3:6, 0:8] = _random((3, 8), dtype, seed=4)
    assert len(_chunk_keys(_objects(array.store))) == 2  # of 9 chunks
    expected = array[...]  # zarr's reading, fill value and all
    io = region_io.RegionIO(array, 2)

    np.testing.assert_array_equal(_read(io, _whole(SHAPE)), expected)
    for region in READ_REGIONS:
        shape = tuple(s.stop - s.start for s in region)
        wide = np.zeros((shape[0], 2 * shape[1]), dtype)
        io.read(region, wide[:, 1::2])
        np.testing.assert_array_equal(wide[:, 1::2], expected[region], str(region))
        np.testing.assert_array_equal(wide[:, ::2], 0)


@pytest.mark.parametrize(
    "layout, kind",
    [("v3-none", "local"), ("v2-zstd", "local"), ("v3-gzip", "memory")],
)
@pytest.mark.parametrize(
    "region",
    [
        (slice(0, 3), slice(0, 3)),
        (slice(1, 7), slice(0, 10)),
        (slice(6, 7), slice(8, 9)),
    ],
    ids=["part_of_a_chunk", "offset_rows", "part_of_edge"],
)
def test_region_io_direct_write_of_compressed_or_remote_partial_chunks_fails(
    tmp_path, layout, kind, region
):
    array = _create(_new_store(kind, tmp_path, "s.zarr"), SUPPORTED[layout])
    io = region_io.RegionIO(array, 1)
    data = np.zeros(tuple(s.stop - s.start for s in region), np.float32)

    with pytest.raises(ValueError, match="whole chunks"):
        io.write(region, data)


def _spy_on_open_flags(monkeypatch) -> list[int]:
    """The flags of every os.open call from now on."""
    opened = []
    real_open = os.open

    def spy_open(path, flags, *args, **kwargs):
        opened.append(flags)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    return opened


@pytest.mark.parametrize(
    "chunks", [(3, 4), (32, 32), (5, 1024)], ids=["60B", "4096B", "20KiB"]
)
def test_region_io_unbuffered_round_trips_like_zarr(tmp_path, monkeypatch, chunks):
    shape = (2 * chunks[0] + 1, 2 * chunks[1] - 1)  # with ragged edges
    layout = SUPPORTED["v3-none"]
    by_zarr = _create(
        zarr.storage.LocalStore(str(tmp_path / "z")), layout, shape, chunks
    )
    by_io = _create(zarr.storage.LocalStore(str(tmp_path / "i")), layout, shape, chunks)
    data = _random(shape, np.float32, seed=7)
    by_zarr[...] = data
    opened = _spy_on_open_flags(monkeypatch)
    io = region_io.RegionIO(by_io, 2, unbuffered=True)
    io.write(_whole(shape), data)
    out = np.zeros((shape[0], shape[1] + 3), np.float32)
    io.read(_whole(shape), out[:, 2:-1])
    from_zarr = _read(region_io.RegionIO(by_zarr, 2, unbuffered=True), _whole(shape))
    monkeypatch.undo()

    np.testing.assert_array_equal(out[:, 2:-1], data)
    np.testing.assert_array_equal(from_zarr, data)
    np.testing.assert_array_equal(by_io[...], data)
    assert _objects(by_io.store) == _objects(by_zarr.store)
    if _O_DIRECT:  # tried, whether or not the file system takes it
        assert any(flags & _O_DIRECT for flags in opened)


@needs_o_direct
def test_region_io_uses_o_direct_only_when_unbuffered(tmp_path, monkeypatch):
    array = _create(zarr.storage.LocalStore(str(tmp_path)), SUPPORTED["v3-none"])
    data = _random(SHAPE, np.float32, seed=12)
    opened = _spy_on_open_flags(monkeypatch)

    io = region_io.RegionIO(array, 2)
    io.write(_whole(SHAPE), data)
    read = _read(io, _whole(SHAPE))

    np.testing.assert_array_equal(read, data)
    assert opened and not any(flags & _O_DIRECT for flags in opened)


# Cases that once went wrong.


@pytest.mark.parametrize("dtype", [np.float64, np.int32, ">f4"])
def test_region_io_direct_write_casts_data_to_the_array_dtype_local_uncompressed(
    tmp_path, dtype
):
    array = _create(zarr.storage.LocalStore(str(tmp_path)), SUPPORTED["v3-none"])
    data = np.arange(70).reshape(SHAPE).astype(dtype)

    region_io.RegionIO(array, 1).write((slice(0, 6), slice(0, 8)), data[:6, :8])

    np.testing.assert_array_equal(array[:6, :8], data[:6, :8].astype(np.float32))


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("dtype", [np.float64, np.int32, ">f4"])
def test_region_io_direct_write_casts_data_to_the_array_dtype(tmp_path, kind, dtype):
    layout = SUPPORTED["v3-zstd" if kind == "local" else "v3-none"]
    array = _create(_new_store(kind, tmp_path, "s.zarr"), layout)
    data = np.arange(70).reshape(SHAPE).astype(dtype)

    region_io.RegionIO(array, 1).write(_whole(SHAPE), data)

    np.testing.assert_array_equal(array[...], data.astype(np.float32))


def test_region_io_memory_store_keeps_no_view_of_written_data():
    array = _create(zarr.storage.MemoryStore({}), SUPPORTED["v3-none"])
    block = np.ones((3, 4), np.float32)

    region_io.RegionIO(array, 1).write((slice(0, 3), slice(0, 4)), block)
    block[...] = 5

    np.testing.assert_array_equal(array[0:3, 0:4], 1)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr"])
@pytest.mark.parametrize("layout", ["v3-none", "v3-zstd"])
def test_region_io_reads_a_0d_array(tmp_path, layout, direct):
    array = _create(
        zarr.storage.LocalStore(str(tmp_path)), SUPPORTED[layout], shape=(), chunks=()
    )
    array[()] = 3.5
    out = np.zeros((), np.float32)

    region_io.RegionIO(array, 1, direct=direct).read((), out)

    assert out == 3.5


# ChunkFiles on a disk and on tmpfs.


@pytest.fixture(params=["disk", "tmpfs"])
def chunk_dir(request, tmp_path) -> str:
    if request.param == "disk":
        return str(tmp_path)
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm (tmpfs) on this system")
    path = tempfile.mkdtemp(prefix="xarray-beam-test-", dir="/dev/shm")
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def _o_direct_opens(directory: str) -> bool:
    """Whether the file system of ``directory`` lets files open with O_DIRECT."""
    if not _O_DIRECT:
        return False
    path = os.path.join(directory, "probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | _O_DIRECT))
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        return False
    finally:
        if os.path.exists(path):
            os.remove(path)
    return True


FILE_CHUNKS = [
    pytest.param((32, 32), np.float32, id="4096B"),
    pytest.param((3, 5), np.float32, id="60B"),
    pytest.param((33, 65), np.int16, id="4290B"),
    pytest.param((3, 4, 1024), np.float64, id="96KiB"),
]


def _strided(array: np.ndarray, axis: int) -> np.ndarray:
    """A view equal to ``array`` that skips every other element of ``axis``."""
    shape = list(array.shape)
    shape[axis] *= 2
    every_other = [slice(None)] * array.ndim
    every_other[axis] = slice(None, None, 2)
    big = np.zeros(shape, array.dtype)
    big[tuple(every_other)] = array
    return big[tuple(every_other)]


SOURCES = {
    "contiguous": lambda a: a.copy(),
    "fortran": np.asfortranarray,
    "outer_strided": lambda a: _strided(a, 0),
    "inner_strided": lambda a: _strided(a, -1),
    "reversed": lambda a: np.ascontiguousarray(a[::-1])[::-1],
}


def _file_targets(shape, dtype) -> dict[str, np.ndarray]:
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return {
        "contiguous": np.zeros(shape, dtype),
        "aligned": buffers.aligned_empty(nbytes).view(dtype).reshape(shape),
        "outer_strided": _strided(np.zeros(shape, dtype), 0),
        "inner_strided": _strided(np.zeros(shape, dtype), -1),
        "reversed": np.zeros(shape, dtype)[::-1],
    }


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("chunks, dtype", FILE_CHUNKS)
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_write_and_read_whole_chunks(
    chunk_dir, direct, chunks, dtype, source
):
    files = chunk_files.ChunkFiles(chunks, np.dtype(dtype), fill_value=0, direct=direct)
    data = _random(chunks, dtype, seed=8)
    path = os.path.join(chunk_dir, "a", "c", "1", "0")

    files.write(path, SOURCES[source](data))

    with open(path, "rb") as f:
        assert f.read() == data.tobytes()  # the raw C-order chunk zarr stores
    for name, target in _file_targets(chunks, dtype).items():
        files.read(path, target)
        np.testing.assert_array_equal(target, data, name)
    assert os.listdir(os.path.dirname(path)) == ["0"]  # no partial file left
    assert files.direct == (direct and _o_direct_opens(chunk_dir))


INNER = [
    (slice(0, 1), slice(0, 1)),
    (slice(1, 3), slice(2, 5)),
    (slice(0, 3), slice(4, 5)),
    (slice(2, 3), slice(0, 5)),
]


@pytest.mark.parametrize("chunks, dtype", FILE_CHUNKS[:3])
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_read_part_of_a_chunk(chunk_dir, direct, chunks, dtype):
    files = chunk_files.ChunkFiles(chunks, np.dtype(dtype), fill_value=0, direct=direct)
    data = _random(chunks, dtype, seed=9)
    path = os.path.join(chunk_dir, "c", "0")
    files.write(path, data)

    for inner in INNER:
        shape = data[inner].shape
        for name, target in _file_targets(shape, dtype).items():
            files.read(path, target, inner)
            np.testing.assert_array_equal(target, data[inner], f"{inner} {name}")


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_read_a_missing_file_as_the_fill_value(chunk_dir, direct):
    files = chunk_files.ChunkFiles((3, 5), np.dtype(np.int16), -7, direct=direct)
    whole = np.zeros((3, 5), np.int16)
    wide = np.zeros((2, 6), np.int16)

    files.read(os.path.join(chunk_dir, "c", "9"), whole)
    files.read(os.path.join(chunk_dir, "c", "9"), wide[:, ::2], (slice(1, 3),) * 2)

    np.testing.assert_array_equal(whole, -7)
    np.testing.assert_array_equal(wide[:, ::2], -7)
    np.testing.assert_array_equal(wide[:, 1::2], 0)
    assert not os.path.exists(os.path.join(chunk_dir, "c"))


@pytest.mark.parametrize("chunks", [(512, 512), (500, 509)], ids=["1MiB", "1018000B"])
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_move_a_megabyte_chunk(chunk_dir, direct, chunks):
    files = chunk_files.ChunkFiles(chunks, np.dtype(np.float32), 0, direct=direct)
    data = _random(chunks, np.float32, seed=10)
    path = os.path.join(chunk_dir, "c", "0")

    files.write(path, _strided(data, 0))
    out = np.zeros((chunks[0], chunks[1] + 1), np.float32)
    files.read(path, out[:, 1:])
    part = np.zeros((100, 200), np.float32)
    files.read(path, part, (slice(400, 500), slice(300, 500)))

    np.testing.assert_array_equal(out[:, 1:], data)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_array_equal(part, data[400:500, 300:500])
    assert os.path.getsize(path) == data.nbytes
    assert os.listdir(os.path.dirname(path)) == ["0"]


@pytest.mark.parametrize("chunks", [(1024,), (1000,), (3, 5)], ids=str)
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_reject_a_short_file(chunk_dir, direct, chunks):
    files = chunk_files.ChunkFiles(chunks, np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(chunk_dir, "c", "0")
    files.write(path, np.ones(chunks, np.float32))
    os.truncate(path, os.path.getsize(path) - 4)

    with pytest.raises(OSError):
        files.read(path, np.zeros(chunks, np.float32))
    with pytest.raises(OSError):
        one = (slice(0, 1),) * len(chunks)
        files.read(path, np.zeros((1,) * len(chunks), np.float32), one)


@pytest.mark.parametrize("extra", [4, 4096])
@pytest.mark.parametrize("chunks", [(1024,), (1000,)], ids=["4096B", "4000B"])
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_reject_a_long_file(tmp_path, direct, chunks, extra):
    files = chunk_files.ChunkFiles(chunks, np.dtype(np.float32), 0, direct=direct)
    path = str(tmp_path / "c" / "0")
    files.write(path, np.ones(chunks, np.float32))
    with open(path, "ab") as f:
        f.write(b"\0" * extra)

    with pytest.raises(OSError):
        files.read(path, np.zeros(chunks, np.float32))


@needs_o_direct
@pytest.mark.parametrize("refused_at", ["write", "read"])
def test_chunk_files_fall_back_when_o_direct_is_refused(
    tmp_path, monkeypatch, refused_at
):
    """As tmpfs (before Linux 6.6) does: opening with O_DIRECT fails, EINVAL."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if flags & _O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, *args, **kwargs)

    files = chunk_files.ChunkFiles((33, 65), np.dtype(np.int16), 0, direct=True)
    data = _random((33, 65), np.int16, seed=11)
    path = str(tmp_path / "c" / "0")
    if refused_at == "write":
        monkeypatch.setattr(os, "open", refusing_open)
    files.write(path, _strided(data, -1))
    monkeypatch.setattr(os, "open", refusing_open)
    whole = np.zeros((33, 65), np.int16)
    files.read(path, whole)
    part = np.zeros((5, 4), np.int16)
    files.read(path, part, (slice(10, 15), slice(60, 64)))
    monkeypatch.undo()

    assert not files.direct
    np.testing.assert_array_equal(whole, data)
    np.testing.assert_array_equal(part, data[10:15, 60:64])
    with open(path, "rb") as f:
        assert f.read() == data.tobytes()
    assert os.listdir(tmp_path / "c") == ["0"]


@needs_o_direct
@pytest.mark.parametrize("refused_at", ["write", "read"])
@pytest.mark.parametrize("code", [errno.EINVAL, errno.EOPNOTSUPP])
def test_chunk_files_fall_back_when_direct_transfers_are_refused(
    tmp_path, monkeypatch, refused_at, code
):
    """Some file systems open with O_DIRECT but refuse the transfer itself."""
    real_write, real_readv = os.write, os.readv

    def direct(fd):
        return fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT

    def refusing_write(fd, data):
        if direct(fd):
            raise OSError(code, "refused")
        return real_write(fd, data)

    def refusing_readv(fd, buffers_):
        if direct(fd):
            raise OSError(code, "refused")
        return real_readv(fd, buffers_)

    files = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=True)
    data = _random((64, 64), np.float32, seed=12)
    path = str(tmp_path / "c" / "0")
    if refused_at == "write":
        monkeypatch.setattr(os, "write", refusing_write)
    files.write(path, data)
    monkeypatch.setattr(os, "readv", refusing_readv)
    out = np.zeros((64, 64), np.float32)
    files.read(path, out)
    monkeypatch.undo()

    assert not files.direct
    np.testing.assert_array_equal(out, data)
    assert os.listdir(tmp_path / "c") == ["0"]


# BufferPool


@pytest.mark.parametrize("nbytes", [1, 100, 4095, 4096, 4097, 100_000, 1 << 20])
def test_buffers_are_page_aligned(nbytes):
    pool = buffers.BufferPool(keep=2)
    fresh = pool.take(nbytes)
    pool.give(fresh)
    reused = pool.take(max(1, nbytes // 2))

    for buffer in (buffers.aligned_empty(nbytes), fresh, reused):
        assert buffer.ctypes.data % buffers.ALIGNMENT == 0
        assert buffer.dtype == np.uint8
    assert fresh.nbytes == nbytes
    assert reused.nbytes == max(1, nbytes // 2)


def test_buffer_pool_reuses_a_returned_buffer_once():
    pool = buffers.BufferPool(keep=2)
    first = pool.take(10_000)
    address = first.ctypes.data
    pool.give(first)

    again = pool.take(9_000)
    other = pool.take(9_000)

    assert again.ctypes.data == address
    assert again.nbytes == 9_000
    assert other.ctypes.data != address  # handed out once only
    assert not np.shares_memory(again, other)


def test_buffer_pool_keeps_only_the_largest_buffers():
    pool = buffers.BufferPool(keep=2)
    taken = [pool.take(n) for n in (30_000, 10_000, 20_000)]
    addresses = [b.ctypes.data for b in taken]
    owners = [weakref.ref(b.base) for b in taken]
    for buffer in taken:
        pool.give(buffer)
    del taken, buffer
    gc.collect()

    assert [owner() is not None for owner in owners] == [True, False, True]
    assert pool.take(25_000).ctypes.data == addresses[0]
    assert pool.take(15_000).ctypes.data == addresses[2]


def test_buffer_pool_releases_too_small_buffers_for_a_bigger_request():
    pool = buffers.BufferPool(keep=4)
    small = [pool.take(n) for n in (5_000, 8_000)]
    owners = [weakref.ref(b.base) for b in small]
    for buffer in small:
        pool.give(buffer)
    del small, buffer
    gc.collect()
    assert all(owner() is not None for owner in owners)

    big = pool.take(50_000)
    gc.collect()

    assert big.nbytes == 50_000
    assert all(owner() is None for owner in owners)


def test_buffer_pool_takes_back_a_typed_view_of_its_buffer():
    pool = buffers.BufferPool(keep=2)
    raw = pool.take(64 * 64 * 4)
    address = raw.ctypes.data
    typed = raw.view(np.float32).reshape(64, 64)
    del raw

    pool.give(typed[8:, 3:])  # any view of it gives the whole buffer back

    again = pool.take(64 * 64 * 4)
    assert again.ctypes.data == address
    assert again.nbytes == 64 * 64 * 4


def test_buffer_pool_clear_releases_everything():
    pool = buffers.BufferPool(keep=2)
    buffer = pool.take(20_000)
    owner = weakref.ref(buffer.base)
    pool.give(buffer)
    del buffer

    pool.clear()
    gc.collect()

    assert owner() is None


class _SlowStore(zarr.storage.MemoryStore):
    """A store whose every fetch waits, as object storage does, counting how
    many fetches are in flight at once."""

    def __init__(self):
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def get(self, key, prototype, byte_range=None):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            return await super().get(key, prototype, byte_range)
        finally:
            self.in_flight -= 1


def test_reads_from_object_storage_keep_several_fetches_in_flight():
    store = _SlowStore()
    data = np.random.default_rng(0).normal(size=(40, 6)).astype("f4")
    array = zarr.create_array(store, shape=data.shape, chunks=(2, 6), dtype="f4")
    array[...] = data
    io = region_io.RegionIO(array)  # concurrency 1, as fast_load asks
    assert io.direct

    out = np.empty_like(data)
    assert io.read((slice(0, 40), slice(0, 6)), out) == 0

    np.testing.assert_array_equal(out, data)
    assert store.most_in_flight == region_io.REMOTE_READ_CONCURRENCY
