"""Tests of the thread helpers for storage and NumPy work."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
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


# In a fresh process: fill the pools with threads, fork, use them in the child.
_FORK_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys, threading
    from xarray_beam.io import threads

    def fill(map_items, workers):
        barrier = threading.Barrier(workers)
        map_items(lambda _: barrier.wait(), list(range(workers)))

    def child(queue):
        queue.put((threads.map_compute(abs, [-4, -5]),
                   threads.map_variables(abs, [-6, -7]),
                   threads.map_bounded(abs, [-8, -9], 2)))

    fill(threads.map_compute, max(2, os.cpu_count() or 1))
    fill(threads.map_variables, 16)
    fill(lambda fn, items: threads.map_bounded(fn, items, 16), 16)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    process.join(20)
    if process.is_alive():
        process.kill()
        sys.exit("the forked child hung")
    print(queue.get())
    """
)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork here"
)
def test_a_forked_child_makes_pools_of_its_own():
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "([4, 5], [6, 7], [8, 9])"
