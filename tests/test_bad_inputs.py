"""A catalogue of bad inputs: each is refused with an error naming the culprit,
and leaves an existing store byte for byte as it was.

Every test snapshots a small store (written with plain xarray, or with
``DatasetToZarr``), runs or builds the bad pipeline against it, and compares
the snapshot afterwards. Errors the docs promise "when the pipeline is built"
are checked by applying transforms to a pipeline that never runs.
"""

import os
import re
import shutil

import apache_beam as beam
import numpy as np
import pytest
import xarray
from helpers import read_tree

import xarray_beam as xb

# Zarr chunks of the stores below: 4 along time, whole along x.
ZARR_CHUNKS = {"time": 4}


def _dataset() -> xarray.Dataset:
    """time: 8, x: 3; a float64 variable over both dims, an int32 one over time."""
    return xarray.Dataset(
        {
            "t": (("time", "x"), np.arange(24.0).reshape(8, 3)),
            "count": (("time",), np.arange(8, dtype=np.int32)),
        },
        coords={"time": np.arange(8), "x": [10, 20, 30]},
    )


def _run(build) -> None:
    """Build and run a pipeline on the DirectRunner."""
    with beam.Pipeline("DirectRunner") as p:
        build(p)


def _build(build) -> None:
    """Build a pipeline without running it (for errors promised at build time)."""
    build(beam.Pipeline("DirectRunner"))


def _mentioning(*parts: str) -> str:
    """A regex matching text that contains every part, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(part)})" for part in parts)


def _chunk(start: int, stop: int) -> tuple[xb.Key, xarray.Dataset]:
    return xb.Key({"time": start, "x": 0}), _dataset().isel(time=slice(start, stop))


@pytest.fixture
def dataset() -> xarray.Dataset:
    return _dataset()


@pytest.fixture
def template(dataset) -> xarray.Dataset:
    return xb.make_template(dataset)


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, str]:
    """The same store written once by plain xarray and once by xarray_beam."""
    root = tmp_path_factory.mktemp("originals")
    paths = {"xarray": str(root / "xarray.zarr"), "xarray_beam": str(root / "xb.zarr")}
    _dataset().chunk(ZARR_CHUNKS).to_zarr(paths["xarray"])
    _run(lambda p: p | xb.DatasetToZarr(_dataset(), paths["xarray_beam"], ZARR_CHUNKS))
    return paths


def _copy(originals, writer: str, tmp_path) -> str:
    path = str(tmp_path / "existing.zarr")
    shutil.copytree(originals[writer], path)
    return path


@pytest.fixture
def store(originals, tmp_path) -> str:
    """A store written by plain xarray."""
    return _copy(originals, "xarray", tmp_path)


@pytest.fixture(params=["xarray", "xarray_beam"])
def any_store(request, originals, tmp_path) -> str:
    """A store written by plain xarray or by xarray_beam."""
    return _copy(originals, request.param, tmp_path)


# 1. Chunks that do not cover whole Zarr chunks (or shards)


@pytest.mark.parametrize(
    ("start", "stop"),
    [(2, 6), (0, 2), (4, 6)],
    ids=["straddles_two_chunks", "first_half", "ends_mid_chunk"],
)
def test_misaligned_chunk_is_refused_before_writing_into_a_store(
    store, template, start, stop
):
    before = read_tree(store)
    key, chunk = _chunk(start, stop)
    expected = (
        rf"chunk {re.escape(repr(key))} cannot be written safely: variable 't' "
        rf"spans \[{start}, {stop}\) along 'time', which does not cover whole "
        r"Zarr chunks of size 4"
    )
    with pytest.raises(ValueError, match=expected):
        _run(
            lambda p: (
                p
                | beam.Create([(key, chunk)])
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before


def test_chunk_covering_a_zarr_chunk_but_not_its_shard_is_refused(
    tmp_path, dataset, template
):
    path = str(tmp_path / "sharded.zarr")
    _run(
        lambda p: (
            p | xb.DatasetToZarr(dataset, path, {"time": 2}, zarr_shards={"time": 4})
        )
    )
    before = read_tree(path)
    key, chunk = _chunk(0, 2)
    with pytest.raises(
        ValueError, match=r"variable 't' spans \[0, 2\) along 'time'.*whole Zarr shards"
    ):
        _run(
            lambda p: (
                p
                | beam.Create([(key, chunk)])
                | xb.ChunksToZarr(path, template, mode="r+")
            )
        )
    assert read_tree(path) == before


# 2. Chunk dtypes that differ from the template


@pytest.mark.parametrize(
    ("name", "dtype", "template_dtype"),
    [("t", "float32", "float64"), ("count", "int64", "int32")],
)
def test_chunk_with_a_dtype_other_than_the_templates_is_refused(
    store, template, name, dtype, template_dtype
):
    before = read_tree(store)
    key, chunk = _chunk(0, 4)
    chunk = chunk.assign({name: chunk[name].astype(dtype)})
    expected = (
        f"variable '{name}' in chunk {re.escape(repr(key))} has dtype {dtype}, "
        f"but the template has {template_dtype}"
    )
    with pytest.raises(ValueError, match=expected):
        _run(
            lambda p: (
                p
                | beam.Create([(key, chunk)])
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before


# 3. Chunk dims that differ from the template (a transposed chunk is fine)


@pytest.mark.parametrize(
    ("spoil", "dims"),
    [
        (lambda chunk: chunk.rename(x="y"), r"\('time', 'y'\)"),
        (lambda chunk: chunk.isel(x=0), r"\('time',\)"),
    ],
    ids=["renamed_dim", "dropped_dim"],
)
def test_chunk_with_other_dims_than_the_template_is_refused(
    store, template, spoil, dims
):
    before = read_tree(store)
    key, chunk = _chunk(0, 4)
    expected = (
        rf"variable 't' in chunk {re.escape(repr(key))} has dimensions {dims}, "
        r"but the template has \('time', 'x'\)"
    )
    with pytest.raises(ValueError, match=expected):
        _run(
            lambda p: (
                p
                | beam.Create([(key, spoil(chunk))])
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before


def test_transposed_chunk_is_accepted_and_stored_in_the_templates_order(
    store, dataset, template
):
    key, chunk = _chunk(0, 4)
    flipped = (chunk + 100).transpose("x", "time")
    _run(
        lambda p: (
            p
            | beam.Create([(key, flipped)])
            | xb.ChunksToZarr(store, template, mode="r+")
        )
    )
    expected = dataset.copy(deep=True)
    expected["t"][:4] += 100
    expected["count"][:4] += 100
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), expected)


# 4. Duplicate keys


# Duplicate keys written into a store the pipeline creates are refused by
# the write guard (tests/test_resume.py); with mode='r+' a pipeline may
# deliberately rewrite chunks, so duplicates there are not detected (docs).


def test_duplicate_keys_are_refused_when_inferring_the_template(tmp_path, store):
    # docs/zarr.md: with template=None, "gaps or overlaps raise ValueError".
    before = read_tree(tmp_path)
    key, chunk = _chunk(0, 4)
    with pytest.raises(ValueError, match="keys are duplicated"):
        _run(
            lambda p: (
                p
                | beam.Create([(key, chunk), (key, chunk + 1)])
                | xb.ChunksToZarr(str(tmp_path / "new.zarr"))
            )
        )
    assert read_tree(tmp_path) == before


# 5. Missing chunks to consolidate


def test_consolidate_chunks_with_a_gap_names_the_keys_around_it():
    pieces = [_chunk(0, 2), _chunk(2, 4), _chunk(6, 8)]
    expected = (
        rf"misaligned along 'time': {re.escape(repr(pieces[1][0]))} covers "
        rf"\[2, 4\), which leaves a gap before {re.escape(repr(pieces[2][0]))}"
    )
    with pytest.raises(ValueError, match=expected):
        list(xb.consolidate_chunks(pieces))


def test_consolidate_chunks_with_a_hole_in_the_grid_names_the_missing_key(dataset):
    pieces = [
        (xb.Key({"time": t, "x": x}), dataset.isel(time=slice(t, t + 4), x=[x]))
        for t, x in [(0, 0), (0, 1), (4, 0)]
    ]
    missing = xb.Key({"time": 4, "x": 1})
    with pytest.raises(
        ValueError, match=r"missing chunk\(s\) at " + re.escape(repr(missing))
    ):
        list(xb.consolidate_chunks(pieces))


@pytest.mark.parametrize(
    ("starts", "expected"),
    [
        (
            [0, 4, 6],
            r"Key\(offsets=\{'time': 0, 'x': 0\}.*leaves a gap before "
            r"Key\(offsets=\{'time': 4, 'x': 0\}",
        ),
        (
            [4, 6],
            r"target chunk at Key\(offsets=\{'time': 0, 'x': 0\}.*first chunk is "
            r"missing \(chunks start at Key\(offsets=\{'time': 4, 'x': 0\}",
        ),
    ],
    ids=["gap", "first_missing"],
)
def test_consolidate_chunks_transform_with_missing_chunks_writes_nothing(
    store, template, starts, expected
):
    before = read_tree(store)
    pieces = [_chunk(start, start + 2) for start in starts]
    with pytest.raises(ValueError, match=expected):
        _run(
            lambda p: (
                p
                | beam.Create(pieces)
                | xb.ConsolidateChunks({"time": 8})
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before


# 6. An existing store, default mode


def _chunks_to_zarr(dataset, path, mode=None):
    return lambda p: (
        p
        | xb.DatasetToChunks(dataset, ZARR_CHUNKS)
        | xb.ChunksToZarr(path, xb.make_template(dataset), mode=mode)
    )


def _chunks_to_zarr_inferred(dataset, path, mode=None):
    return lambda p: (
        p | xb.DatasetToChunks(dataset, ZARR_CHUNKS) | xb.ChunksToZarr(path, mode=mode)
    )


def _dataset_to_zarr(dataset, path, mode=None):
    return lambda p: p | xb.DatasetToZarr(dataset, path, ZARR_CHUNKS, mode=mode)


def _high_level_to_zarr(dataset, path, mode=None):
    return lambda p: (
        p | xb.Dataset.from_xarray(dataset, ZARR_CHUNKS).to_zarr(path, mode=mode)
    )


WRITERS = [
    _chunks_to_zarr,
    _chunks_to_zarr_inferred,
    _dataset_to_zarr,
    _high_level_to_zarr,
]
WRITER_IDS = ["ChunksToZarr", "ChunksToZarr_inferred", "DatasetToZarr", "to_zarr"]


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
def test_existing_store_is_refused_by_default_when_the_pipeline_is_built(
    any_store, dataset, writer
):
    before = read_tree(any_store)
    with pytest.raises(
        FileExistsError, match=f"Zarr store already exists at {re.escape(any_store)}"
    ):
        _build(writer(dataset, any_store))
    assert read_tree(any_store) == before


@pytest.mark.parametrize(
    "writer",
    [_chunks_to_zarr, _chunks_to_zarr_inferred],
    ids=["template", "inferred_template"],
)
def test_store_created_after_the_pipeline_was_built_is_refused_by_setup(
    tmp_path, originals, dataset, writer
):
    path = str(tmp_path / "late.zarr")
    pipeline = beam.Pipeline("DirectRunner")
    writer(dataset, path)(pipeline)
    shutil.copytree(originals["xarray"], path)
    before = read_tree(path)
    with pytest.raises(
        FileExistsError, match=f"Zarr store already exists at {re.escape(path)}"
    ):
        pipeline.run().wait_until_finish()
    assert read_tree(path) == before


# 7. Templates that do not match the store, mode='r+'


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda ds: ds.isel(time=slice(0, 6)),
            r"variable 't' has dims \{'time': 8, 'x': 3\} in the Zarr store at "
            r"PATH but \{'time': 6, 'x': 3\} in the template",
        ),
        (
            lambda ds: ds.assign(extra=ds.t),
            r"the Zarr store at PATH has no variable 'extra'",
        ),
        (
            lambda ds: ds.assign(count=ds["count"] > 0),
            r"variable 'count' has dtype int32 in the Zarr store at PATH, which "
            r"cannot hold the template's bool",
        ),
        (
            lambda ds: ds.transpose("x", "time"),
            r"variable 't' has dims \{'time': 8, 'x': 3\} in the Zarr store at "
            r"PATH but \{'x': 3, 'time': 8\}",
        ),
        (
            lambda ds: ds.assign_coords(x=[1, 2, 3]),
            r"the 'x' coordinate of the Zarr store at PATH differs",
        ),
    ],
    ids=["shape", "variables", "dtype", "dim_order", "coordinate"],
)
def test_template_that_does_not_match_the_store_is_refused_when_built(
    any_store, dataset, change, expected
):
    before = read_tree(any_store)
    other = change(dataset)
    message = expected.replace("PATH", re.escape(any_store))
    with pytest.raises(ValueError, match=message):
        _build(
            lambda p: (
                p
                | beam.Create([])
                | xb.ChunksToZarr(any_store, xb.make_template(other), mode="r+")
            )
        )
    with pytest.raises(ValueError, match=message):
        _build(lambda p: p | xb.DatasetToZarr(other, any_store, ZARR_CHUNKS, mode="r+"))
    assert read_tree(any_store) == before


def test_zarr_chunks_that_differ_from_the_store_are_refused_before_writing(
    store, template
):
    before = read_tree(store)
    key, chunk = _chunk(0, 2)
    with pytest.raises(
        ValueError,
        match=rf"chunks of 2 along 'time', but variable 't' in the existing store "
        rf"at {re.escape(store)} has chunks of 4",
    ):
        _run(
            lambda p: (
                p
                | beam.Create([(key, chunk)])
                | xb.ChunksToZarr(store, template, {"time": 2}, mode="r+")
            )
        )
    assert read_tree(store) == before


# 8. Bad chunk specs


BAD_CHUNKS = [
    ({"y": 2}, ValueError, r"dimension\(s\) \['y'\]"),
    ({"time": 0}, ValueError, r"'time' must be positive or -1, got 0"),
    ({"time": -2}, ValueError, r"'time' must be positive or -1, got -2"),
    ({"time": 2.5}, TypeError, r"'time' must be an int .*got 2\.5"),
    ({"time": None}, TypeError, r"'time' must be an int .*got None"),
    ({"time": "auto"}, ValueError, r"'time'='auto' is not supported"),
]
BAD_CHUNK_IDS = ["unknown_dim", "zero", "negative", "float", "none", "auto"]


@pytest.mark.parametrize(("chunks", "error", "expected"), BAD_CHUNKS, ids=BAD_CHUNK_IDS)
def test_normalize_chunks_rejects_bad_specs_naming_the_dim(
    dataset, chunks, error, expected
):
    with pytest.raises(error, match=expected):
        xb.normalize_chunks(chunks, dataset)


@pytest.mark.parametrize(("chunks", "error", "expected"), BAD_CHUNKS, ids=BAD_CHUNK_IDS)
def test_dataset_from_xarray_rejects_bad_chunks_before_touching_a_store(
    store, dataset, chunks, error, expected
):
    before = read_tree(store)
    with pytest.raises(error, match=expected):
        _build(
            lambda p: (
                p | xb.Dataset.from_xarray(dataset, chunks).to_zarr(store, mode="r+")
            )
        )
    assert read_tree(store) == before


@pytest.mark.parametrize(
    ("chunks", "error", "expected"),
    [
        ({"y": 2}, ValueError, r"dimension\(s\) \['y'\] not found"),
        ({"time": 0}, ValueError, r"'time' must be a positive integer or -1"),
        ({"time": -2}, ValueError, r"'time' must be a positive integer or -1"),
        ({"time": 2.5}, TypeError, r"'time' must be an int.*got float: 2\.5"),
        ({"time": "auto"}, TypeError, r"'time' must be an int.*got str: 'auto'"),
        ({"time": (4, 3)}, ValueError, r"'time' sum to 7, but the dimension has"),
    ],
    ids=["unknown_dim", "zero", "negative", "float", "auto", "tuple_short"],
)
def test_dataset_to_chunks_rejects_bad_chunks_before_touching_a_store(
    store, dataset, template, chunks, error, expected
):
    before = read_tree(store)
    with pytest.raises(error, match=expected):
        _build(
            lambda p: (
                p
                | xb.DatasetToChunks(dataset, chunks)
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda ds: xb.Rechunk(ds.sizes, ZARR_CHUNKS, {"y": 2}, itemsize=8),
            r"target_chunks names dimension\(s\) \['y'\]",
        ),
        (
            lambda ds: xb.Rechunk(ds.sizes, {"y": 4}, {"time": 2}, itemsize=8),
            r"chunks name dimension\(s\) \['y'\]",
        ),
        (
            lambda ds: xb.Rechunk(ds.sizes, ZARR_CHUNKS, {"time": 0}, itemsize=8),
            r"target_chunks for dimension 'time' must be positive or -1, got 0",
        ),
        (
            lambda ds: xb.Dataset.from_xarray(ds, ZARR_CHUNKS).rechunk({"y": 2}),
            r"dimension\(s\) \['y'\]",
        ),
        (
            lambda ds: xb.ConsolidateChunks({"time": -3}),
            r"target_chunks for dimension 'time' must be positive or -1, got -3",
        ),
        (
            lambda ds: xb.ChunksToZarr("unused.zarr", xb.make_template(ds), {"y": 2}),
            r"zarr_chunks names dimension\(s\) \['y'\]",
        ),
    ],
    ids=[
        "rechunk_target",
        "rechunk_source",
        "rechunk_zero",
        "dataset_rechunk",
        "consolidate",
        "zarr_chunks",
    ],
)
def test_rechunk_and_write_specs_with_bad_dims_or_sizes_are_refused_when_built(
    tmp_path, monkeypatch, dataset, make, expected
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=expected):
        make(dataset)
    assert read_tree(tmp_path) == {}


# 9. Bad paths


@pytest.mark.parametrize("writer", WRITERS, ids=WRITER_IDS)
def test_mode_r_plus_without_a_store_names_the_path(tmp_path, store, dataset, writer):
    before = read_tree(store)
    missing = str(tmp_path / "missing.zarr")
    with pytest.raises(
        FileNotFoundError,
        match=f"mode='r\\+' .* there is none at {re.escape(missing)}",
    ):
        _build(writer(dataset, missing, mode="r+"))
    assert not os.path.exists(missing)
    assert read_tree(store) == before


@pytest.mark.parametrize(
    ("mode", "error", "expected"),
    [
        (None, FileExistsError, "a file or directory already exists at PATH"),
        ("w", FileExistsError, "refusing to overwrite PATH: it is not empty"),
        ("r+", FileNotFoundError, "there is none at PATH"),
    ],
)
@pytest.mark.parametrize(
    "writer", [_chunks_to_zarr, _high_level_to_zarr], ids=["ChunksToZarr", "to_zarr"]
)
def test_a_regular_file_is_never_written_over(
    tmp_path, dataset, writer, mode, error, expected
):
    path = str(tmp_path / "notes.txt")
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(error, match=expected.replace("PATH", re.escape(path))):
        _build(writer(dataset, path, mode=mode))
    assert read_tree(tmp_path) == {"notes.txt": b"keep me"}


@pytest.mark.parametrize(
    "make",
    [
        lambda ds: xb.ChunksToZarr("", xb.make_template(ds)),
        lambda ds: xb.DatasetToZarr(ds, ""),
        lambda ds: xb.Dataset.from_xarray(ds, ZARR_CHUNKS).to_zarr(""),
        lambda ds: xb.setup_zarr(xb.make_template(ds), ""),
        lambda ds: xb.open_zarr(""),
    ],
    ids=["ChunksToZarr", "DatasetToZarr", "to_zarr", "setup_zarr", "open_zarr"],
)
def test_an_empty_store_path_is_refused(tmp_path, monkeypatch, dataset, make):
    # An empty path must not fall back to the working directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep me")
    with pytest.raises(ValueError, match="store path is empty"):
        make(dataset)
    assert read_tree(tmp_path) == {"keep.txt": b"keep me"}


# 10. Keys with offsets or vars of the wrong type


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: xb.Key({"time": 1.5}), r"offset for dimension 'time' .*float: 1\.5"),
        (lambda: xb.Key({"time": "0"}), r"offset for dimension 'time' .*str: '0'"),
        (lambda: xb.Key({"time": True}), r"offset for dimension 'time' .*bool"),
        (lambda: xb.Key({0: 1}), r"dimension names must be str, got 0"),
        (lambda: xb.Key([("time", 0)]), r"offsets must be a mapping"),
        (lambda: xb.Key(vars="t"), r"not a string: use vars=\{'t'\}"),
        (lambda: xb.Key(vars={1}), r"vars must be strings, got 1"),
        (lambda: xb.Key().replace(vars="t"), r"not a string: use vars=\{'t'\}"),
        (lambda: xb.Key().with_offsets(time=1.0), r"'time' must be an int"),
    ],
    ids=[
        "float_offset",
        "str_offset",
        "bool_offset",
        "int_dim",
        "list_offsets",
        "str_vars",
        "int_vars",
        "replace_str_vars",
        "with_float_offset",
    ],
)
def test_key_with_wrongly_typed_parts_is_refused(make, expected):
    with pytest.raises(TypeError, match=expected):
        make()


def test_key_built_with_a_float_offset_in_a_pipeline_writes_nothing(store, template):
    before = read_tree(store)
    chunk = _dataset().isel(time=slice(4, 8))
    with pytest.raises(TypeError, match=r"'time' must be an int, got float: 4\.0"):
        _run(
            lambda p: (
                p
                | beam.Create([8])
                | beam.Map(lambda n: (xb.Key({"time": n / 2}), chunk))
                | xb.ChunksToZarr(store, template, mode="r+")
            )
        )
    assert read_tree(store) == before
