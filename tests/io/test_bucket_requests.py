"""How many requests reads, guarded writes and setups make on a real S3
server (moto, on 127.0.0.1), counted at s3fs's one call per request.

Each request to a cloud bucket costs tens of milliseconds, so these are the
round trips a job waits for; the GCS emulator checks the same answers.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import s3fs
import xarray
import zarr
import zarr.storage
from zarr.buffer import default_buffer_prototype

import xarray_beam as xb
from xarray_beam.io import chunk_writer, stores, write_guard, zarr_io
from xarray_beam.io.compat import run


@pytest.fixture
def s3_calls(monkeypatch) -> Iterator[collections.Counter]:
    """Every S3 API call s3fs makes (one per HTTP request), by operation."""
    calls: collections.Counter = collections.Counter()
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        calls[method] += 1
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    yield calls


def _store(bucket) -> zarr.storage.FsspecStore:
    return zarr.storage.FsspecStore.from_url(
        bucket.new_prefix(),
        storage_options=dict(bucket.storage_options),
        read_only=False,
    )


def _buffer(data: bytes):
    return default_buffer_prototype().buffer.from_bytes(data)


def test_fetching_an_object_is_one_request(s3, s3_calls):
    store = _store(s3)
    run(store.set("a/c/0", _buffer(b"chunk bytes")))
    s3_calls.clear()

    found = run(stores.fetch(store, "a/c/0"))
    missing = run(stores.fetch(store, "a/c/1"))

    assert found is not None and found.to_bytes() == b"chunk bytes"
    assert missing is None
    # s3fs's own whole-object read asks for the size first (a HEAD, and a
    # listing when the object is missing).
    assert s3_calls == {"get_object": 2}


def test_fetch_answers_the_same_on_both_emulators(bucket):
    store = _store(bucket)
    run(store.set("a/c/0", _buffer(b"x" * 1000)))
    run(store.set("empty", _buffer(b"")))

    assert run(stores.fetch(store, "a/c/0")).to_bytes() == b"x" * 1000
    assert run(stores.fetch(store, "a/c/1")) is None
    # An empty object: a range from 0 may be refused; it is fetched whole.
    assert run(stores.fetch(store, "empty")).to_bytes() == b""


def test_a_guarded_write_of_a_new_chunk_is_a_get_and_a_put(s3, s3_calls):
    store = write_guard.GuardedStore(_store(s3))
    s3_calls.clear()

    run(store.set("a/c/0", _buffer(b"abc")))
    assert s3_calls == {"get_object": 1, "put_object": 1}

    s3_calls.clear()
    run(store.set("a/c/0", _buffer(b"abc")))  # a retried write: the same bytes
    assert s3_calls == {"get_object": 1}
    with pytest.raises(write_guard.ConflictingWriteError):
        run(store.set("a/c/0", _buffer(b"xyz")))
    assert run(stores.fetch(store, "a/c/0")).to_bytes() == b"abc"


def _dataset() -> xarray.Dataset:
    rng = np.random.default_rng(0)
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), rng.normal(size=(8, 5)).astype("float32")),
            "sst": (("time", "x"), rng.normal(size=(8, 5)).astype("float32")),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=8, freq="h"),
            "x": np.arange(5.0),
        },
    )


def test_setting_up_a_new_store_only_looks_once_then_writes(s3, s3_calls):
    dataset = _dataset()
    template = xb.make_template(dataset)
    url = s3.new_prefix() + ".zarr"
    options = zarr_io.WriteOptions(url, {"time": 4}, storage_options=s3.storage_options)
    s3_calls.clear()

    target = zarr_io.setup(template, options)

    writes = s3_calls["put_object"]
    looks = sum(s3_calls.values()) - writes
    # Finding the location missing is a HEAD and a listing; everything after
    # is written in a few concurrent batches, nothing read back.
    assert looks <= 2, s3_calls
    assert set(s3_calls) <= {"head_object", "list_objects_v2", "put_object"}
    # What setup returns is what the store says, read back from the store
    # (compared as text: a NaN fill value is not equal to itself).
    read_back = zarr_io.target_from_store(template, options, options.job)
    assert repr(target) == repr(read_back)


def test_chunk_writes_open_the_store_once_and_write_each_chunk_once(s3, s3_calls):
    dataset = _dataset()
    url = s3.new_prefix() + ".zarr"
    options = zarr_io.WriteOptions(url, {"time": 4}, storage_options=s3.storage_options)
    target = zarr_io.setup(xb.make_template(dataset), options)
    writer = chunk_writer.ChunkWriter(url, s3.storage_options, guard=True)
    s3_calls.clear()

    for start in (0, 4):
        key = xb.Key({"time": start, "x": 0})
        writer.write(key, dataset.isel(time=slice(start, start + 4)), target)

    # The root document once (its format is known: no probing for the
    # other; s3fs 2025 and later asks its size first), then per chunk object
    # a GET (is it there?) and a PUT.
    assert s3_calls["head_object"] <= 1
    assert s3_calls - collections.Counter(head_object=1) == {
        "get_object": 1 + 4,
        "put_object": 4,
    }
    stored = xarray.open_zarr(url, storage_options=s3.storage_options).compute()
    xarray.testing.assert_identical(stored, dataset)
