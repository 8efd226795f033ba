"""``InProcessRunner``: Beam's in-process runner, with short state sampling
and few malloc arenas.

Each bundle ends by stopping Beam's state-sampling thread, which sleeps up
to its sampling period; the runner shortens the period while it runs, and
only for a Beam whose sampler it recognises. glibc's malloc keeps memory in
an arena per allocating thread (up to eight per core); runs allow one per
core, here and in the worker processes they start, unless the user set
``MALLOC_ARENA_MAX``.
"""

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import apache_beam as beam
import pytest
from apache_beam.runners.worker import statesampler

from xarray_beam.beam import runners


def _sampling_period(_) -> int:
    return statesampler.get_current_tracker().sampling_period_ms


def _periods_seen() -> list[int]:
    return runners.collect(
        lambda p: p | beam.Create([1, 2]) | beam.Map(_sampling_period)
    )


def test_bundles_sample_every_few_milliseconds_and_the_default_comes_back():
    default = statesampler.StateSampler.__init__.__defaults__
    assert default == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)

    assert _periods_seen() == [runners.SAMPLING_PERIOD_MS] * 2
    assert statesampler.StateSampler.__init__.__defaults__ == default


def test_a_sampler_it_does_not_recognise_is_left_alone(monkeypatch):
    monkeypatch.setattr(statesampler.StateSampler.__init__, "__defaults__", (123,))

    assert _periods_seen() == [123, 123]
    assert statesampler.StateSampler.__init__.__defaults__ == (123,)


def test_the_default_comes_back_when_the_pipeline_fails():
    def fail(_):
        raise RuntimeError("step failed")

    with pytest.raises(Exception, match="step failed"):  # Beam wraps it
        runners.collect(lambda p: p | beam.Create([1]) | beam.Map(fail))
    assert statesampler.StateSampler.__init__.__defaults__ == (
        statesampler.DEFAULT_SAMPLING_PERIOD_MS,
    )


# --- malloc arenas -------------------------------------------------------------

GLIBC = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")

# Run in a fresh process (glibc fixes its arena limit once per process):
# 24 threads allocate and hold 2 MB at the same moment, inside a pipeline
# step or outside any pipeline; then malloc_info lists the arenas.
_ARENAS_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, os, sys, tempfile, threading
    import apache_beam as beam
    import numpy as np
    from xarray_beam.beam import runners

    def allocate_at_once(_):
        barrier = threading.Barrier(24)
        def hold():
            block = np.ones(2**18)
            barrier.wait()
            return block.sum()
        threads = [threading.Thread(target=hold) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return 1

    if sys.argv[1] == "pipeline":
        runners.collect(lambda p: p | beam.Create([0]) | beam.Map(allocate_at_once))
    else:
        allocate_at_once(0)
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    path = tempfile.mktemp()
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    info = open(path).read()
    os.remove(path)
    print(json.dumps({"arenas": info.count("<heap nr="),
                      "env": os.environ.get("MALLOC_ARENA_MAX")}))
    """
)


def _arenas_after(mode: str, env: dict[str, str] | None = None) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != runners.ARENA_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS_SCRIPT, mode],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_runs_here_allow_one_malloc_arena_per_core():
    limit = runners.malloc_arenas()
    without = _arenas_after("threads")
    assert without["arenas"] > limit  # what glibc does by default (the control)

    within = _arenas_after("pipeline")
    assert 1 <= within["arenas"] <= limit
    assert within["env"] is None  # nothing left in the environment


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_a_malloc_arena_max_the_user_set_is_kept():
    chosen = runners.malloc_arenas() + 3
    seen = _arenas_after("pipeline", {runners.ARENA_ENV: str(chosen)})
    assert seen == {"arenas": chosen, "env": str(chosen)}


@pytest.mark.slow  # starts worker processes
def test_worker_processes_get_the_arena_limit_and_the_launcher_does_not_keep_it(
    tmp_path,
):
    """(Only standard functions run on the workers: they cannot import this
    module.)"""
    assert runners.ARENA_ENV not in os.environ
    options = runners.in_process_options(
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    )
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | beam.Create([runners.ARENA_ENV])
            | beam.Map(os.getenv)
            | beam.io.WriteToText(str(tmp_path / "seen"), shard_name_template="")
        )
    assert (tmp_path / "seen").read_text() == f"{runners.malloc_arenas()}\n"
    assert runners.ARENA_ENV not in os.environ
