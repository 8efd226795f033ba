"""Choosing how a rechunk runs (``model.routes``), and Datasets following it.

The choice is one pure function of a ``RechunkRequest``; ``Dataset.rechunk``
and ``Dataset.to_zarr`` only carry out its answer.
"""

import pytest
import xarray

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.beam import rechunk_zarr
from xarray_beam.model import planning
from xarray_beam.model.routes import (
    RechunkRequest,
    SourceLayout,
    can_reread,
    choose_route,
)

SIZES = {"time": 48, "x": 12}
SHAPES = {"t": planning.VariableShape(("time", "x"), (48, 12), 4, (6, 12))}


def _request(new, source=None, chunks=None):
    return RechunkRequest(SIZES, 4, chunks or {"time": 6, "x": 12}, new, source)


def test_unchanged_chunks_take_no_route():
    route = choose_route(_request({"time": 6, "x": 12}))

    assert route.route == "same" and route.plan is None


@pytest.mark.parametrize(
    "new, rereads",
    [
        ({"time": 12, "x": 12}, True),
        ({"time": 48, "x": 12}, True),
        ({"time": 6, "x": 3}, True),
        ({"time": 4, "x": 12}, False),
        ({"time": 9, "x": 12}, False),
    ],
)
def test_a_source_is_reread_when_new_chunks_are_whole_stored_chunks(new, rereads):
    source = SourceLayout({"time": 6, "x": 1})

    assert can_reread(_request(new, source)) == rereads
    assert (choose_route(_request(new, source)).route == "reread") == rereads


def test_a_transformed_dataset_is_never_reread():
    assert choose_route(_request({"time": 12, "x": 12})).route == "shuffle"


def test_only_a_whole_store_written_to_zarr_goes_store_to_store():
    whole = SourceLayout({"time": 6, "x": 12}, SHAPES)
    selected = SourceLayout({"time": 6, "x": 12})
    new = {"time": 48, "x": 3}

    assert choose_route(_request(new, whole), writes_zarr=True).route == "storage"
    assert choose_route(_request(new, whole)).route == "shuffle"
    assert choose_route(_request(new, selected), writes_zarr=True).route == "shuffle"


def test_a_route_carries_the_plan_of_its_stages_and_prints_it():
    whole = SourceLayout({"time": 6, "x": 12}, SHAPES)
    new = {"time": 48, "x": 3}

    storage = choose_route(_request(new, whole), writes_zarr=True)
    shuffle = choose_route(_request(new))

    assert storage.plan == planning.plan_dataset_rechunk(SHAPES, new, method="storage")
    assert shuffle.plan == planning.plan_rechunk(SIZES, {"time": 6, "x": 12}, new, 4)
    assert str(storage).startswith("rechunk route: storage (")
    assert str(storage.plan) in str(storage)


def test_a_plan_that_cannot_fit_max_mem_is_refused_with_the_planners_error():
    request = RechunkRequest(
        SIZES, 4, {"time": 6, "x": 12}, {"time": 48, "x": 1}, max_mem=100
    )

    with pytest.raises(ValueError, match="max_mem"):
        choose_route(request)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("routes") / "era5.zarr")
    synthetic.write_era5_like(path, hours=24, resolution=30.0, chunks={"time": 6})
    return path


def test_dataset_routes_follow_the_choice_and_match_the_store_planner(store):
    ds = xb.Dataset.from_zarr(store)
    new = {"time": -1, "latitude": 2}

    pencils = ds.rechunk(new)
    written = pencils.to_zarr("unused.zarr")
    storage = pencils.rechunk_route(to_zarr=True)

    assert pencils.rechunk_route().route == "shuffle"
    assert storage.route == "storage"
    assert storage.plan == rechunk_zarr.plan_store_rechunk(store, new)
    assert written.label.endswith("ToZarr(unused.zarr)")
    assert [name for name, _ in written.steps] == ["RechunkZarr"]
    assert ds.rechunk({"time": 12}).rechunk_route().route == "reread"


def test_a_selection_or_explicit_zarr_chunks_keep_the_shuffle_route(store):
    ds = xb.Dataset.from_zarr(store)
    new = {"time": -1, "latitude": 2}

    selected = ds.isel(time=slice(0, 12)).rechunk(new)
    explicit = ds.rechunk(new).to_zarr("unused.zarr", zarr_chunks={"time": 24})

    assert selected.rechunk_route(to_zarr=True).route == "shuffle"
    assert "RechunkZarr" not in [name for name, _ in explicit.steps]


def test_rechunking_twice_plans_one_rechunk_from_the_start(store):
    ds = xb.Dataset.from_zarr(store)

    twice = ds.rechunk({"time": 12, "latitude": 2}).rechunk({"time": -1})

    assert twice.rechunk_route(to_zarr=True).chunks == {
        "time": 24,
        "latitude": 2,
        "longitude": xarray.open_zarr(store).sizes["longitude"],
    }
    assert twice.rechunk_route().chunks == twice.chunks
