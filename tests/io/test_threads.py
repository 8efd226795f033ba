"""Tests of the thread helpers for storage and NumPy work."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from xarray_beam.io import threads


def _thread_name(_) -> str:
    return threading.current_thread().name


def test_map_compute_keeps_the_order_of_items():
    arrays = [np.full(1000, i, dtype="f8") for i in range(7)]
    assert threads.map_compute(np.sum, arrays) == [1000.0 * i for i in range(7)]


def test_map_compute_runs_several_items_on_its_own_pool():
    names = threads.map_compute(_thread_name, [0, 1, 2])
    assert all(name.startswith("xarray_beam_compute") for name in names)


def test_map_compute_runs_one_item_in_the_calling_thread():
    assert threads.map_compute(_thread_name, [0]) == [_thread_name(None)]
    assert threads.map_compute(_thread_name, []) == []


def test_map_compute_raises_what_an_item_raises():
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("item 2 is bad")
        return x

    with pytest.raises(ValueError, match="item 2 is bad"):
        threads.map_compute(check, [0, 1, 2, 3])


def test_map_compute_inside_variable_pool_does_not_deadlock():
    # A variable's work (in the storage pool) may reduce on the compute pool.
    def per_variable(i: int) -> list[int]:
        return threads.map_compute(lambda j: i * 10 + j, [0, 1])

    items = list(range(40))  # more than either pool has threads
    assert threads.map_variables(per_variable, items) == [
        [i * 10, i * 10 + 1] for i in items
    ]
