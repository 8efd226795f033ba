"""Reading chunk layouts from Zarr metadata documents (``zarr_spec``), by hand.

The documents here are written as the Zarr specification defines them (v2
``.zarray``, v3 ``zarr.json``), independently of zarr-python; the tests in
``test_direct_path.py`` check the same rules against what zarr-python
writes. Anything not recognised exactly must raise ``UnsupportedLayout``.
"""

import copy
import sys

import numpy as np
import pytest

from xarray_beam.io._direct.spec import UnsupportedLayout, read_layout

NATIVE = sys.byteorder
FOREIGN = "big" if NATIVE == "little" else "little"
NATIVE_CHAR = "<" if NATIVE == "little" else ">"
FOREIGN_CHAR = ">" if NATIVE == "little" else "<"
GRID_0D = {"name": "regular", "configuration": {"chunk_shape": []}}


def v3(**changes) -> dict:
    document = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [7, 10],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 4]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [
            {"name": "bytes", "configuration": {"endian": NATIVE}},
            {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
        ],
        "attributes": {"units": "K"},
        "dimension_names": ["y", "x"],
        "storage_transformers": [],
    }
    document.update(changes)
    return document


def v2(**changes) -> dict:
    document = {
        "zarr_format": 2,
        "shape": [7, 10],
        "chunks": [3, 4],
        "dtype": f"{NATIVE_CHAR}f4",
        "fill_value": "NaN",
        "order": "C",
        "filters": None,
        "dimension_separator": ".",
        "compressor": {"id": "zstd", "level": 1},
    }
    document.update(changes)
    return document


def test_v3_layout_reads_shape_chunks_dtype_fill_and_compressor():
    layout = read_layout(v3())

    assert layout.zarr_format == 3
    assert layout.shape == (7, 10)
    assert layout.chunks == (3, 4)
    assert layout.dtype == np.dtype("float32")
    assert np.isnan(layout.fill_value) and layout.fill_value.dtype == np.float32
    assert layout.compressor == {"id": "zstd", "level": 3, "checksum": False}


def test_v2_layout_reads_shape_chunks_dtype_fill_and_compressor():
    layout = read_layout(v2())

    assert layout.zarr_format == 2
    assert (layout.shape, layout.chunks) == ((7, 10), (3, 4))
    assert layout.dtype == np.dtype("float32")
    assert np.isnan(layout.fill_value)
    assert layout.compressor == {"id": "zstd", "level": 1}


@pytest.mark.parametrize(
    "document, index, key",
    [
        (v3(), (2, 1), "c/2/1"),
        (
            v3(
                chunk_key_encoding={
                    "name": "default",
                    "configuration": {"separator": "."},
                }
            ),
            (2, 1),
            "c.2.1",
        ),
        (v3(chunk_key_encoding={"name": "default"}), (0, 3), "c/0/3"),
        (v3(chunk_key_encoding={"name": "v2"}), (2, 1), "2.1"),
        (
            v3(chunk_key_encoding={"name": "v2", "configuration": {"separator": "/"}}),
            (2, 1),
            "2/1",
        ),
        (v2(), (2, 1), "2.1"),
        (v2(dimension_separator="/"), (2, 1), "2/1"),
        ({k: v for k, v in v2().items() if k != "dimension_separator"}, (1, 0), "1.0"),
        (v3(shape=[], chunk_grid=GRID_0D), (), "c"),
        (v3(shape=[], chunk_grid=GRID_0D, chunk_key_encoding={"name": "v2"}), (), "0"),
        (v2(shape=[], chunks=[]), (), "0"),
    ],
    ids=[
        "v3-slash",
        "v3-dot",
        "v3-default-separator",
        "v3-v2-encoding",
        "v3-v2-encoding-slash",
        "v2-dot",
        "v2-slash",
        "v2-no-separator",
        "v3-0d",
        "v3-v2-encoding-0d",
        "v2-0d",
    ],
)
def test_chunk_keys_follow_the_key_encoding(document, index, key):
    assert read_layout(document).chunk_key(index) == key


@pytest.mark.parametrize(
    "data_type, fill_value, expected",
    [
        ("float32", "NaN", np.float32("nan")),
        ("float64", "Infinity", np.inf),
        ("float64", "-Infinity", -np.inf),
        ("float32", 1.5, np.float32(1.5)),
        ("float32", 0, np.float32(0)),
        ("float64", "0x3ff0000000000000", np.float64(1.0)),
        ("int16", -32768, np.int16(-32768)),
        ("uint8", 255, np.uint8(255)),
        ("bool", True, np.True_),
        ("complex64", [1.0, "NaN"], np.complex64(complex(1.0, float("nan")))),
    ],
)
def test_v3_fill_values_decode_as_the_spec_says(data_type, fill_value, expected):
    codecs = [{"name": "bytes", "configuration": {"endian": NATIVE}}]
    layout = read_layout(v3(data_type=data_type, fill_value=fill_value, codecs=codecs))

    assert layout.fill_value.dtype == np.dtype(data_type)
    np.testing.assert_array_equal(layout.fill_value, expected)


def test_a_hex_fill_value_keeps_its_exact_nan_payload():
    layout = read_layout(v3(fill_value="0x7fc00001"))

    assert np.array(layout.fill_value).view(np.uint32) == 0x7FC00001


def test_datetime_extension_types_read_their_unit_and_nat_fill():
    data_type = {
        "name": "numpy.datetime64",
        "configuration": {"unit": "s", "scale_factor": 1},
    }
    layout = read_layout(v3(data_type=data_type, fill_value=-(2**63)))

    assert layout.dtype == np.dtype("M8[s]")
    assert np.isnat(layout.fill_value)


def test_v2_datetime_and_bool_dtypes_are_plain_layouts():
    times = read_layout(v2(dtype=f"{NATIVE_CHAR}M8[ns]", fill_value=-(2**63)))
    flags = read_layout(v2(dtype="|b1", fill_value=False, compressor=None))

    assert times.dtype == np.dtype("M8[ns]") and np.isnat(times.fill_value)
    assert flags.dtype == np.dtype(bool) and flags.compressor is None


def test_one_byte_types_need_no_endianness():
    layout = read_layout(
        v3(data_type="uint8", fill_value=0, codecs=[{"name": "bytes"}])
    )

    assert layout.dtype == np.dtype("u1") and layout.compressor is None


def test_blosc_shuffle_names_become_numcodecs_numbers():
    blosc = {
        "name": "blosc",
        "configuration": {
            "typesize": 4,
            "cname": "lz4",
            "clevel": 5,
            "shuffle": "bitshuffle",
            "blocksize": 0,
        },
    }
    layout = read_layout(v3(codecs=[v3()["codecs"][0], blosc]))

    assert layout.compressor == {
        "id": "blosc",
        "typesize": 4,
        "cname": "lz4",
        "clevel": 5,
        "shuffle": 2,
        "blocksize": 0,
    }


def test_an_extension_field_that_need_not_be_understood_is_ignored():
    document = v3(some_extension={"must_understand": False, "anything": [1, 2]})

    assert read_layout(document).chunks == (3, 4)


def _codecs(*extra) -> list:
    return [{"name": "bytes", "configuration": {"endian": NATIVE}}, *extra]


UNSUPPORTED_V3 = {
    "sharded": v3(
        codecs=[
            {
                "name": "sharding_indexed",
                "configuration": {"chunk_shape": [1, 2], "codecs": _codecs()},
            }
        ]
    ),
    "two-compressors": v3(
        codecs=_codecs(
            {"name": "zstd", "configuration": {"level": 0, "checksum": False}},
            {"name": "gzip", "configuration": {"level": 1}},
        )
    ),
    "checksum": v3(codecs=_codecs({"name": "crc32c"})),
    "transpose-first": v3(
        codecs=[
            {"name": "transpose", "configuration": {"order": [1, 0]}},
            *_codecs(),
        ]
    ),
    "unknown-codec": v3(codecs=_codecs({"name": "lz5", "configuration": {}})),
    "zstd-with-a-new-setting": v3(
        codecs=_codecs(
            {
                "name": "zstd",
                "configuration": {"level": 0, "checksum": False, "window": 9},
            }
        )
    ),
    "bytes-with-a-new-setting": v3(
        codecs=[{"name": "bytes", "configuration": {"endian": NATIVE, "x": 1}}]
    ),
    "foreign-endian": v3(
        codecs=[{"name": "bytes", "configuration": {"endian": FOREIGN}}]
    ),
    "no-endian-for-multibyte": v3(codecs=[{"name": "bytes"}]),
    "vlen-strings": v3(
        data_type="string", fill_value="", codecs=[{"name": "vlen-utf8"}]
    ),
    "raw-bits": v3(data_type="r16", fill_value="0x0000"),
    "datetime-scaled": v3(
        data_type={
            "name": "numpy.datetime64",
            "configuration": {"unit": "s", "scale_factor": 2},
        },
        fill_value=0,
    ),
    "no-fill-value": v3(fill_value=None),
    "fill-of-the-wrong-type": v3(fill_value="zero"),
    "int-fill-out-of-range": v3(
        data_type="int8", fill_value=300, codecs=[{"name": "bytes"}]
    ),
    "new-field": v3(new_field={"must_understand": True}),
    "new-plain-field": v3(chunk_memory_order="F"),
    "storage-transformer": v3(storage_transformers=[{"name": "anything"}]),
    "irregular-grid": v3(
        chunk_grid={"name": "rectilinear", "configuration": {"chunk_shapes": [[3, 4]]}}
    ),
    "unknown-key-encoding": v3(chunk_key_encoding={"name": "hashed"}),
    "group": v3(node_type="group"),
    "zero-chunks": v3(
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0, 4]}}
    ),
}
UNSUPPORTED_V2 = {
    "filters": v2(filters=[{"id": "delta", "dtype": "<f4"}]),
    "fortran-order": v2(order="F"),
    "foreign-endian": v2(dtype=f"{FOREIGN_CHAR}f4"),
    "strings": v2(dtype="<U4", fill_value=""),
    "objects": v2(dtype="|O", fill_value=0),
    "structured": v2(dtype=[["a", "<f4"]], fill_value=None),
    "no-fill-value": v2(fill_value=None),
    "unknown-compressor": v2(compressor={"id": "snappy5"}),
    "new-field": v2(chunk_order="F"),
    "bad-separator": v2(dimension_separator="-"),
    "chunks-of-another-rank": v2(chunks=[3]),
}


@pytest.mark.parametrize(
    "document",
    [*UNSUPPORTED_V3.values(), *UNSUPPORTED_V2.values()],
    ids=[f"v3-{k}" for k in UNSUPPORTED_V3] + [f"v2-{k}" for k in UNSUPPORTED_V2],
)
def test_layouts_not_recognised_exactly_are_unsupported(document):
    with pytest.raises(UnsupportedLayout):
        read_layout(document)


@pytest.mark.parametrize("document", [None, [], {"zarr_format": 4}, {}], ids=str)
def test_documents_that_are_not_array_metadata_are_unsupported(document):
    with pytest.raises(UnsupportedLayout):
        read_layout(document)


def test_reading_a_layout_leaves_the_document_as_it_was():
    document = v3()
    before = copy.deepcopy(document)

    read_layout(document)

    assert document == before
