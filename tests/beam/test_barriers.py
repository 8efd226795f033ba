"""``barriers.start`` and ``barriers.after``: one element, after everything.

Each upstream element leaves a file behind; the step hung on ``after``
counts the files when it runs, so running early would show fewer.
"""

import os

import apache_beam as beam
import pytest

from xarray_beam.beam import barriers, runners


def _leave_file(n: int, directory: str) -> int:
    with open(os.path.join(directory, str(n)), "w") as f:
        f.write("done")
    return n


def _count_files(value, directory: str):
    return value, len(os.listdir(directory))


@pytest.mark.parametrize("elements", [0, 1, 25])
def test_after_emits_one_element_once_every_element_exists(tmp_path, elements):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    def build(p):
        made = p | beam.Create(list(range(elements))) | "Reshuffle" >> beam.Reshuffle()
        one = made | "One" >> beam.Map(_leave_file, str(first))
        two = made | "Two" >> beam.Map(_leave_file, str(second))
        done = barriers.after([one, two], "Both", "ready")
        return done | beam.Map(
            lambda value: (_count_files(value, str(first)), len(os.listdir(second)))
        )

    assert runners.collect(build) == [(("ready", elements), elements)]


def test_after_takes_its_value_from_a_singleton_side_input(tmp_path):
    def build(p):
        token = barriers.start(p, "Start") | "Token" >> beam.Map(lambda _: "token-1")
        written = p | beam.Create([1, 2, 3]) | beam.Map(_leave_file, str(tmp_path))
        done = barriers.after(written, "Written", beam.pvalue.AsSingleton(token))
        return done | beam.Map(_count_files, str(tmp_path))

    assert runners.collect(build) == [("token-1", 3)]


def test_start_is_one_element(tmp_path):
    assert runners.collect(lambda p: barriers.start(p, "Start")) == [b""]


@pytest.mark.slow  # starts worker processes
def test_after_waits_on_worker_processes(tmp_path):
    """Workers in other processes: directories are the only shared state.
    (Only standard functions run there: workers cannot import this module.)"""
    files = tmp_path / "files"
    files.mkdir()
    options = runners.in_process_options(
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    )
    with beam.Pipeline(options=options) as p:
        made = (
            p
            | beam.Create([str(files / str(n)) for n in range(8)])
            | "Reshuffle" >> beam.Reshuffle()
            | beam.Map(os.mkdir)
        )
        _ = (
            barriers.after(made, "Made", str(files))
            | beam.Map(os.listdir)
            | beam.Map(len)
            | beam.io.WriteToText(str(tmp_path / "count"), shard_name_template="")
        )

    assert (tmp_path / "count").read_text() == "8\n"


def test_waiting_marks_bundles_not_elements():
    marks = runners.collect(
        lambda p: (
            p | beam.Create(list(range(1000))) | beam.ParDo(barriers._MarkBundles())
        )
    )
    assert 1 <= len(marks) < 1000
    assert set(marks) == {None}


def test_after_needs_something_to_wait_for():
    with pytest.raises(ValueError, match="Nothing: nothing to wait for"):
        barriers.after([], "Nothing")
