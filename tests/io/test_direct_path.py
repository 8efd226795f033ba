"""The direct chunk path on the installed zarr: taken where it should be, and
never a way to crash or to read something else than zarr would.

``chunk_codec.for_array`` is the one seam. On every supported stack the
layouts zarr and xarray write by default must take it (otherwise the
package silently gets slow); any surprise while deciding, or any chunk the
direct path fails to decode or encode, must end in zarr-python doing the
work, with the same result.
"""

import logging
import os

import numcodecs
import numpy as np
import pytest
import xarray
import zarr
import zarr.storage

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.beam import runners
from xarray_beam.io import compat, fast_load, region_io
from xarray_beam.io._direct import codec as chunk_codec

SHAPE, CHUNKS = (7, 10), (3, 4)


def _data(dtype=np.float32, seed=0) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=SHAPE) * 100
    return values.astype(dtype)


def _array(path, **kwargs) -> zarr.Array:
    kwargs = dict(shape=SHAPE, chunks=CHUNKS, dtype="f4") | kwargs
    return zarr.create_array(str(path), **kwargs)


def _read_all(io: region_io.RegionIO) -> np.ndarray:
    out = np.empty(io.array.shape, io.array.dtype)
    io.read(tuple(slice(0, n) for n in io.array.shape), out)
    return out


# What zarr and xarray write by default takes the direct path.


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"zarr_format": 2},
        {"fill_value": np.nan},
        {"dtype": "i2", "fill_value": -1},
        {"dtype": "M8[s]", "fill_value": np.datetime64("NaT")},
        {"dtype": "bool", "fill_value": False},
        {"compressors": None},
        {"zarr_format": 2, "compressors": numcodecs.Blosc(cname="zstd")},
        {"compressors": zarr.codecs.BloscCodec(cname="lz4")},
        {"compressors": zarr.codecs.GzipCodec()},
    ],
    ids=[
        "v3-default",
        "v2-default",
        "v3-nan-fill",
        "v3-int16",
        "v3-datetime",
        "v3-bool",
        "v3-uncompressed",
        "v2-blosc",
        "v3-blosc",
        "v3-gzip",
    ],
)
def test_arrays_zarr_creates_take_the_direct_path(tmp_path, kwargs):
    array = _array(tmp_path / "a", **kwargs)
    data = _data(array.dtype) if array.dtype.kind not in "bM" else None
    if data is not None:
        array[...] = data

    io = region_io.RegionIO(array, 2)

    assert io.direct, kwargs
    if data is not None:
        np.testing.assert_array_equal(_read_all(io), data)


def test_every_variable_of_an_xarray_written_store_takes_the_direct_path(tmp_path):
    path = str(tmp_path / "x.zarr")
    synthetic.write_era5_like(path, hours=12, resolution=30.0)
    dataset = xarray.open_zarr(path, chunks=None)
    packed = xarray.Dataset(
        {"t2m": (("time", "x"), _data()[:, :4])},
        coords={"time": np.arange(7).astype("M8[h]").astype("M8[ns]")},
    )
    packed.to_zarr(
        str(tmp_path / "packed.zarr"),
        encoding={"t2m": {"dtype": "int16", "scale_factor": 0.01}},
    )
    group = zarr.open_group(path, mode="r")
    packed_group = zarr.open_group(str(tmp_path / "packed.zarr"), mode="r")

    for name in dataset.data_vars:
        assert chunk_codec.for_array(group[name]) is not None, name
    for name in ("t2m", "time"):  # stored as int16 and int64, still direct
        assert chunk_codec.for_array(packed_group[name]) is not None, name


def test_dataset_to_chunks_loads_every_variable_of_a_store_directly(
    tmp_path, monkeypatch
):
    path = str(tmp_path / "era5.zarr")
    synthetic.write_era5_like(path, hours=24, resolution=30.0, chunks={"time": 6})
    loaded = []
    real_load = fast_load.load

    def spy(variable, missing="fill"):
        done = real_load(variable, missing)
        if not isinstance(variable, xarray.IndexVariable):  # those are in memory
            loaded.append(done is not None)
        return done

    monkeypatch.setattr(fast_load, "load", spy)
    source, chunks = xb.open_zarr(path)

    chunks_read = runners.collect(lambda p: p | xb.DatasetToChunks(source, chunks))

    assert loaded and all(loaded), f"{loaded.count(False)} loads went through zarr"
    result = xb.consolidate_fully(chunks_read)[1]
    xarray.testing.assert_identical(result, xarray.open_zarr(path).compute())


# Any surprise while deciding means zarr-python, and the same result.


def _document_with(array: zarr.Array, change) -> dict:
    document = chunk_codec.metadata_document(array)
    change(document)
    return document


FAKED_DOCUMENTS = {
    "unknown-codec": lambda d: d["codecs"].append({"name": "brand-new"}),
    "renamed-codec": lambda d: d["codecs"][1].update(name="zstd2"),
    "new-codec-setting": lambda d: d["codecs"][1]["configuration"].update(x=1),
    "new-field": lambda d: d.update(chunk_layout="tiled"),
    "new-data-type": lambda d: d.update(data_type="bfloat16"),
    "endian-as-a-number": lambda d: d["codecs"][0]["configuration"].update(endian=1),
}


@pytest.mark.parametrize("change", FAKED_DOCUMENTS.values(), ids=FAKED_DOCUMENTS)
def test_a_metadata_document_not_recognised_exactly_falls_back_to_zarr(
    tmp_path, monkeypatch, change
):
    array = _array(tmp_path / "a", fill_value=np.nan)
    data = _data()
    array[...] = data
    faked = _document_with(array, change)
    monkeypatch.setattr(chunk_codec, "metadata_document", lambda a: faked)

    io = region_io.RegionIO(array, 2)

    assert not io.direct
    np.testing.assert_array_equal(_read_all(io), data)
    io.write((slice(0, 3), slice(0, 8)), data[:3, :8] + 1)
    np.testing.assert_array_equal(array[:3, :8], data[:3, :8] + 1)


def test_zarr_objects_of_another_shape_fall_back_to_zarr(tmp_path, monkeypatch):
    # As when a zarr release turned codec enums into plain strings: the
    # metadata object no longer serialises the way this code expects.
    array = _array(tmp_path / "a")
    data = _data()
    array[...] = data

    def changed(self, prototype):
        raise AttributeError("'str' object has no attribute 'value'")

    monkeypatch.setattr(type(array.metadata), "to_buffer_dict", changed)

    assert chunk_codec.for_array(array) is None
    io = region_io.RegionIO(array, 2)
    assert not io.direct
    np.testing.assert_array_equal(_read_all(io), data)


def test_zarr_and_the_document_disagreeing_falls_back_to_zarr(tmp_path, monkeypatch):
    array = _array(tmp_path / "a")
    array[...] = _data()
    faked = _document_with(array, lambda d: d.update(shape=[7, 11]))
    monkeypatch.setattr(chunk_codec, "metadata_document", lambda a: faked)

    assert chunk_codec.for_array(array) is None


def test_a_fallback_is_logged_once_at_debug_level(tmp_path, monkeypatch, caplog):
    array = _array(tmp_path / "logged")
    faked = _document_with(array, FAKED_DOCUMENTS["unknown-codec"])
    monkeypatch.setattr(chunk_codec, "metadata_document", lambda a: faked)

    with caplog.at_level(logging.DEBUG, logger="xarray_beam.io._direct.codec"):
        for _ in range(3):
            assert chunk_codec.for_array(array) is None

    records = [r for r in caplog.records if r.name == "xarray_beam.io._direct.codec"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "brand-new" in records[0].getMessage()


def test_fast_load_with_an_unrecognised_layout_gives_xarrays_values(
    tmp_path, monkeypatch
):
    path = str(tmp_path / "era5.zarr")
    synthetic.write_era5_like(path, hours=12, resolution=30.0)
    expected = xarray.open_zarr(path).compute()
    monkeypatch.setattr(
        chunk_codec,
        "metadata_document",
        lambda a: {"zarr_format": 3, "codecs": [{"name": "from-the-future"}]},
    )
    source, chunks = xb.open_zarr(path)

    for name, var in source.variables.items():
        variable = var.copy(deep=False)
        assert fast_load.load(variable) is None, name
    result = xb.consolidate_fully(
        runners.collect(lambda p: p | xb.DatasetToChunks(source, chunks))
    )[1]
    xarray.testing.assert_identical(result, expected)


# A chunk the direct path cannot decode or encode goes through zarr.


def test_a_chunk_the_codec_fails_to_decode_is_read_by_zarr(tmp_path, monkeypatch):
    array = _array(tmp_path / "a")
    data = _data(seed=3)
    array[...] = data

    def broken(self, data, out):
        raise RuntimeError("decoder from another numcodecs release")

    monkeypatch.setattr(chunk_codec.ChunkCodec, "decode_into", broken)
    io = region_io.RegionIO(array, 2)

    assert io.direct
    np.testing.assert_array_equal(_read_all(io), data)


def test_a_chunk_the_codec_fails_to_encode_is_written_by_zarr(tmp_path, monkeypatch):
    by_zarr, by_io = _array(tmp_path / "z"), _array(tmp_path / "i")
    data = _data(seed=4)
    compat.writing_every_chunk(by_zarr)[...] = data

    def broken(self, chunk):
        raise TypeError("encoder from another numcodecs release")

    monkeypatch.setattr(chunk_codec.ChunkCodec, "encode", broken)
    region_io.RegionIO(by_io, 2).write((slice(0, 7), slice(0, 10)), data)

    np.testing.assert_array_equal(by_io[...], data)
    chunk_files = sorted(os.listdir(tmp_path / "i" / "c" / "0"))
    assert chunk_files == sorted(os.listdir(tmp_path / "z" / "c" / "0"))


def test_a_corrupt_chunk_still_fails_the_read(tmp_path):
    array = _array(tmp_path / "a")
    array[...] = _data()
    (tmp_path / "a" / "c" / "1" / "1").write_bytes(b"not zstd at all")

    with pytest.raises(Exception):  # noqa: B017 - zarr's own error, whatever it is
        _read_all(region_io.RegionIO(array, 2))
