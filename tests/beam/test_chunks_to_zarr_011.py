"""xarray-beam 0.11's ``ChunksToZarr``: no template, and ``needs_setup``."""

import warnings

import apache_beam as beam
import numpy as np
import pytest
import xarray
import zarr

import xarray_beam as xb
from xarray_beam.model import templates


@pytest.fixture
def dataset() -> xarray.Dataset:
    rng = np.random.default_rng(2)
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), rng.normal(size=(6, 4)).astype(np.float32)),
            "sp": (("time",), np.arange(6, dtype=np.int32)),
        },
        coords={"time": np.arange(6) * 6, "x": [0.5, 1.5, 2.5, 3.5]},
    )


# --- ChunksToZarr(path) without a template ----------------------------------


def test_no_template_warns_when_the_transform_is_built(tmp_path):
    with pytest.warns(FutureWarning, match="No template provided") as caught:
        xb.ChunksToZarr(str(tmp_path / "out.zarr"))
    assert caught[0].filename == __file__  # it points at the user's line


def test_a_template_builds_without_a_future_warning(tmp_path, dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        xb.ChunksToZarr(str(tmp_path / "a.zarr"), xb.make_template(dataset))
        xb.DatasetToZarr(dataset, str(tmp_path / "b.zarr"))


def test_no_template_still_writes_the_data(tmp_path, dataset):
    path = str(tmp_path / "out.zarr")
    with pytest.warns(FutureWarning, match="No template provided"):
        write = xb.ChunksToZarr(path)
    with beam.Pipeline("DirectRunner") as p:
        _ = p | xb.DatasetToChunks(dataset, {"time": 2}) | write

    xarray.testing.assert_identical(xarray.open_zarr(path).compute(), dataset)
    assert zarr.open_group(path)["t2m"].chunks == (2, 4)


# --- needs_setup=False: the store was set up beforehand ----------------------


def test_needs_setup_false_writes_chunks_without_setting_up_again(tmp_path, dataset):
    path = str(tmp_path / "out.zarr")
    template = xb.make_template(dataset)
    xb.setup_zarr(template, path, {"time": 2})
    zarr.open_group(path, mode="r+").attrs["added_after_setup"] = "kept"

    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, {"time": 2})
            | xb.ChunksToZarr(path, template, needs_setup=False)
        )

    written = xarray.open_zarr(path, consolidated=False).compute()
    assert written.attrs.pop("added_after_setup") == "kept"
    xarray.testing.assert_identical(written, dataset)


def test_needs_setup_false_without_a_store_fails_when_built(tmp_path, dataset):
    path = tmp_path / "missing.zarr"
    with pytest.raises(FileNotFoundError, match="no(ne| Zarr)"):
        _ = (
            beam.Pipeline("DirectRunner")
            | xb.DatasetToChunks(dataset, {"time": 2})
            | xb.ChunksToZarr(str(path), xb.make_template(dataset), needs_setup=False)
        )
    assert not path.exists()


def test_needs_setup_false_checks_the_store_against_the_template(tmp_path, dataset):
    path = str(tmp_path / "out.zarr")
    xb.setup_zarr(xb.make_template(dataset[["sp"]]), path)
    with pytest.raises(ValueError, match="no variable 't2m'"):
        _ = (
            beam.Pipeline("DirectRunner")
            | xb.DatasetToChunks(dataset, {"time": 2})
            | xb.ChunksToZarr(path, xb.make_template(dataset), needs_setup=False)
        )


def test_needs_setup_false_conflicts_with_a_creating_mode(tmp_path, dataset):
    with pytest.raises(ValueError, match="needs_setup=False"):
        xb.ChunksToZarr(
            str(tmp_path / "out.zarr"),
            xb.make_template(dataset),
            needs_setup=False,
            mode="w",
        )


# --- templates whose non-index coordinates are lazy (make_template's default) --


@pytest.mark.parametrize("split_vars", [False, True], ids=["whole", "split_vars"])
def test_lazy_non_index_coordinates_are_written_from_the_chunks(
    tmp_path, dataset, split_vars
):
    source = dataset.assign_coords(
        lat=("x", np.linspace(-45.0, 45.0, 4)), step=np.float64(6.0)
    )
    template = xb.make_template(source)
    assert {"lat", "step"} <= set(templates.lazy_variables(template))
    path = str(tmp_path / "out.zarr")
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(source, {"time": 2}, split_vars=split_vars)
            | xb.ChunksToZarr(path, template, {"time": 2})
        )

    xarray.testing.assert_identical(xarray.open_zarr(path).compute(), source)
