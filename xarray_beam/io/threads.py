"""Threads for storage work: a few chunks or variables in flight at once.

Loading and writing chunks spend most of their time waiting on storage, so
the variables of a chunk load or write in parallel threads of one
process-wide pool, and ``map_bounded`` keeps at most a given number of
items in flight, which bounds memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable
from typing import Any

_shared_pool: concurrent.futures.ThreadPoolExecutor | None = None


def variable_pool() -> concurrent.futures.ThreadPoolExecutor:
    """A process-wide pool for loading or writing the variables of one chunk."""
    global _shared_pool
    if _shared_pool is None:
        _shared_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="xarray_beam_vars"
        )
    return _shared_pool


def map_variables(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, in parallel threads when worthwhile."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    return list(variable_pool().map(fn, items))


def map_bounded(fn: Callable[[Any], Any], items: list[Any], limit: int) -> list[Any]:
    """``[fn(item) for item in items]``, at most ``limit`` running at once."""
    if limit <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    results = []
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(variable_pool().submit(fn, item))
        if len(pending) >= limit:
            results.append(pending.popleft().result())
    results.extend(future.result() for future in pending)
    return results
