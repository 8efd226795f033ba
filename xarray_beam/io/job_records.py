"""Which job a store belongs to: a record in a small group of the store.

Every store the package sets up gets an empty Zarr group ``xarray_beam`` at
its root, whose attributes hold the record (``xarray.open_zarr`` ignores
groups; ``xarray.open_datatree`` shows it as a child node):

- ``job``: the id of the launch that set the store up. A runner that retries
  the setup step, or re-executes it after writes began, finds its own id and
  neither refuses the store nor wipes it;
- ``fingerprint`` and ``description``: what the job writes (see
  ``model.fingerprints``). A resume of another job is refused, naming the
  difference, and ``verify`` checks the store against the description;
- ``writes_every_chunk``: every chunk is stored, even one that holds only
  the fill value, so an absent chunk is a missing one;
- ``setup_done``: the setup finished (chunk writes wait for it). A store
  whose setup was interrupted is set up again by the same job.

It is written before any array is created, so a store left by an
interrupted setup still says which job it belongs to.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from typing import Any

import zarr

from xarray_beam.io import stores

NAME = "xarray_beam"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """The record of the job a store belongs to (see the module docstring).

    Example:
      ``JobRecord('4c1f…', fingerprint(description), description)``
    """

    job: str
    fingerprint: str
    description: Mapping[str, Any]
    writes_every_chunk: bool = True
    setup_done: bool = False

    def to_attributes(self) -> dict[str, Any]:
        """The record as stored (JSON)."""
        return {
            "version": VERSION,
            "job": self.job,
            "fingerprint": self.fingerprint,
            "writes_every_chunk": self.writes_every_chunk,
            "setup_done": self.setup_done,
            "description": json.loads(json.dumps(self.description)),
        }


def _kwargs(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"storage_options": dict(storage_options)} if storage_options else {}


def read(
    store: Any, storage_options: Mapping[str, Any] | None = None
) -> JobRecord | None:
    """The record of a store, or None if it has none (or an unreadable one).

    Example:
      ``record = read('out.zarr')``
    """
    if stores.store_state(store, storage_options) != "zarr":
        return None
    try:
        group = zarr.open_group(
            store,
            path=NAME,
            mode="r",
            use_consolidated=False,
            **_kwargs(storage_options),
        )
        data: dict[str, Any] = dict(group.attrs)
        return JobRecord(
            str(data["job"]),
            str(data["fingerprint"]),
            dict(data["description"]),
            bool(data.get("writes_every_chunk", False)),
            bool(data.get("setup_done", False)),
        )
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def write(
    store: Any,
    record: JobRecord,
    storage_options: Mapping[str, Any] | None = None,
    consolidate: bool = False,
) -> None:
    """Write (or replace) a store's record; the store's root group must exist.
    With ``consolidate``, the store's consolidated metadata is made again
    (so it holds the new record too).

    Example:
      ``write('out.zarr', record)``
    """
    root = zarr.open_group(store, mode="r+", **_kwargs(storage_options))
    group = root.require_group(NAME)
    group.attrs.put(record.to_attributes())
    if consolidate:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            zarr.consolidate_metadata(root.store)
