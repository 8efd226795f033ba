"""Threads for storage work (a few chunks or variables in flight at once)
and for NumPy work on the variables of one chunk.

Loading and writing chunks spend most of their time waiting on storage, so
the variables of a chunk load or write in parallel threads of one
process-wide pool, and ``map_bounded`` keeps at most a given number of
items in flight, which bounds memory. NumPy releases the GIL in its loops,
so ``map_compute`` reduces the variables of a chunk on all cores at once
instead of one after the other in the thread Beam runs the step in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any

_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    """In a forked child, the parent's pools have no threads: a task given
    to one would wait forever. The child makes pools of its own."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _pool(name: str, workers: int = 16) -> concurrent.futures.ThreadPoolExecutor:
    with _pools_lock:
        if name not in _pools:
            _pools[name] = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"xarray_beam_{name}"
            )
        return _pools[name]


def variable_pool() -> concurrent.futures.ThreadPoolExecutor:
    """A process-wide pool for loading or writing the variables of one chunk."""
    return _pool("vars")


def map_variables(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, in parallel threads when worthwhile."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    return list(variable_pool().map(fn, items))


def map_bounded(fn: Callable[[Any], Any], items: list[Any], limit: int) -> list[Any]:
    """``[fn(item) for item in items]``, at most ``limit`` running at once.

    The items run in a pool of their own, so a function running in
    ``variable_pool`` (a variable's write) may wait for them without taking
    the threads they need.

    Example:
      >>> map_bounded(lambda x: x * x, [1, 2, 3], limit=2)
      [1, 4, 9]
    """
    if limit <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    results = []
    pending: collections.deque = collections.deque()
    pool = _pool("chunks")
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= limit:
            results.append(pending.popleft().result())
    results.extend(future.result() for future in pending)
    return results


def map_compute(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, on as many threads as there are cores.

    For CPU-bound tasks that release the GIL (NumPy reductions) and never
    wait on other tasks: they run in a pool of their own, so they cannot
    take the threads storage work waits on.

    Example:
      >>> map_compute(len, [[1], [1, 2]])
      [1, 2]
    """
    if len(items) <= 1:
        return [fn(item) for item in items]
    return list(_pool("compute", max(2, os.cpu_count() or 1)).map(fn, items))
