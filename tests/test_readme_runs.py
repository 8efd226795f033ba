"""The README runs as written: after its main command, its Python snippets in
order in one namespace, then its command lines, each writing what it says.

The snippets and command lines are read from README.md, not copied here.
"""

import argparse
import contextlib
import io
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys
import types

import pytest
import xarray
import zarr
from helpers import assert_matches_oracle, climatology_oracle
from markdown_snippets import code_blocks, command_lines, section, unbound_names

import xarray_beam

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PENCILS = {"time": -1, "latitude": 23, "longitude": 45}
COMMAND_TIMEOUT_SECONDS = 300
# The main command's store on a coarser grid (25 x 48 instead of 73 x 144):
# the same two hourly months, variables and chunks, 9 times smaller, and
# ragged pencils (23 + 2 latitudes, 45 + 3 longitudes).
RESOLUTION = "7.5"


def _python_blocks() -> list:
    return code_blocks(README, "python")


def _cli_lines() -> list[str]:
    (block,) = code_blocks(section(README, "## The command line"), "bash")
    return command_lines(block)


def _stores_named(code: str) -> set[str]:
    return set(re.findall(r"era5_output/[\w.-]+\.zarr", code))


def _write_main_commands_store() -> str:
    """The input the main command writes, by the example's own code and
    defaults (output directory, hours, chunks), on a coarser grid."""
    common = runpy.run_path(str(ROOT / "examples" / "_common.py"))
    parser = argparse.ArgumentParser()
    common["add_common_arguments"](parser)
    args = parser.parse_args(["--resolution", RESOLUTION])
    with contextlib.redirect_stdout(io.StringIO()):
        return common["input_store"](args)


def _run_cli_line(line: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """One command line, with the ``xarray-beam`` of this interpreter's
    environment, importing the package under test."""
    program, *args = shlex.split(line)
    assert program == "xarray-beam", line
    script = os.path.join(os.path.dirname(sys.executable), "xarray-beam")
    package_root = os.path.dirname(os.path.dirname(xarray_beam.__file__))
    python_path = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [script, *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=python_path),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def _exec_blocks(namespace: dict) -> str:
    """Every Python block of the README in ``namespace``; what they print."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in _python_blocks():
            exec(block.compiled("README.md"), namespace)
    return printed.getvalue()


def _run_readme(cwd: pathlib.Path) -> types.SimpleNamespace:
    """The README run from the top in ``cwd``: what it wrote and printed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        source_path = _write_main_commands_store()
        namespace: dict = {}
        printed = _exec_blocks(namespace)
    commands = {line: _run_cli_line(line, cwd) for line in _cli_lines()}
    return types.SimpleNamespace(
        cwd=cwd,
        source_path=source_path,
        source=xarray.open_zarr(cwd / source_path).compute(),
        namespace=namespace,
        printed=printed,
        commands=commands,
    )


def _open(readme, store: str) -> xarray.Dataset:
    return xarray.open_zarr(readme.cwd / store).compute()


def _assert_pencils_of_the_source(readme, store: str) -> None:
    pencils = _open(readme, store)
    xarray.testing.assert_equal(pencils, readme.source)
    group = zarr.open_group(str(readme.cwd / store), mode="r")
    for name, variable in readme.source.data_vars.items():
        expected = tuple(
            readme.source.sizes[d] if PENCILS[d] == -1 else PENCILS[d]
            for d in variable.dims
        )
        assert group[name].chunks == expected, (store, name)


def _cli_line(readme, subcommand: str) -> str:
    (line,) = [line for line in readme.commands if line.split()[1] == subcommand]
    return line


def _command(readme, subcommand: str) -> subprocess.CompletedProcess:
    return readme.commands[_cli_line(readme, subcommand)]


def test_main_command_runs_the_climatology_example_with_its_defaults():
    block = code_blocks(README.split("<!-- main-command -->", 1)[1], "bash")[0]
    assert command_lines(block)[0].endswith(
        ".venv/bin/python examples/era5_climatology.py"
    )


def test_readme_python_blocks_each_bring_their_own_imports_and_inputs():
    blocks = _python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        assert not block.fragment, f"README.md:{block.line}"
        assert unbound_names(block.code) == set(), f"README.md:{block.line}"


def test_readme_command_lines_all_run_the_xarray_beam_command():
    lines = _cli_lines()
    assert [line.split()[1] for line in lines] == [
        "info",
        "plan",
        "rechunk",
        "climatology",
        "verify",
    ]


# One test, so that the README runs once even when tests are spread over
# processes (pytest -n).
@pytest.mark.slow  # pipelines, and six new Python processes
def test_readme_runs_as_written_and_writes_what_it_says(tmp_path):
    readme = _run_readme(tmp_path)
    _check_every_store_named_exists(readme)
    _check_low_level_copy(readme)
    _check_dataset_pencils_and_celsius_climatology(readme)
    _check_rechunk_zarr(readme)
    _check_climatology(readme)
    _check_command_lines(readme)
    _check_snippets_run_again_and_the_cli_needs_mode_w_to(readme)


def _check_every_store_named_exists(readme) -> None:
    named = set()
    for block in _python_blocks() + code_blocks(README, "bash"):
        named |= _stores_named(block.code)
    assert readme.source_path in named
    missing = sorted(s for s in named if not (readme.cwd / s).exists())
    assert missing == []


def _check_low_level_copy(readme) -> None:
    copy = "era5_output/copy.zarr"
    xarray.testing.assert_equal(_open(readme, copy), readme.source)
    group = zarr.open_group(str(readme.cwd / copy), mode="r")
    assert group["2m_temperature"].chunks[0] == 12


def _check_dataset_pencils_and_celsius_climatology(readme) -> None:
    _assert_pencils_of_the_source(readme, "era5_output/pencils.zarr")
    celsius = readme.source[["2m_temperature"]] - 273.15
    assert_matches_oracle(
        _open(readme, "era5_output/t2m_clim.zarr"), climatology_oracle(celsius)
    )
    # The printed time mean of the Celsius temperature.
    assert "2m_temperature  (latitude, longitude)" in readme.printed


def _check_rechunk_zarr(readme) -> None:
    _assert_pencils_of_the_source(readme, "era5_output/pencils_bounded.zarr")
    assert str(readme.namespace["plan"]) in readme.printed


def _check_climatology(readme) -> None:
    assert_matches_oracle(
        _open(readme, "era5_output/clim.zarr"), climatology_oracle(readme.source)
    )


def _check_command_lines(readme) -> None:
    for line, completed in readme.commands.items():
        assert completed.returncode == 0, (line, completed.stderr)
    info = _command(readme, "info").stdout
    for name in readme.source.data_vars:
        assert name in info
    _assert_pencils_of_the_source(readme, "era5_output/cli_pencils.zarr")
    assert_matches_oracle(
        _open(readme, "era5_output/cli_clim.zarr"), climatology_oracle(readme.source)
    )
    assert "complete" in _command(readme, "verify").stdout


def _check_snippets_run_again_and_the_cli_needs_mode_w_to(readme) -> None:
    # As the README says: the snippets replace their own outputs...
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(readme.cwd)
        _exec_blocks({})
    _check_climatology(readme)
    # ... while the command refuses an existing output unless --mode w.
    line = _cli_line(readme, "climatology")
    refused = _run_cli_line(line, readme.cwd)
    assert refused.returncode == 2
    assert "era5_output/cli_clim.zarr" in refused.stderr
    again = _run_cli_line(line + " --mode w", readme.cwd)
    assert again.returncode == 0, again.stderr
    assert_matches_oracle(
        _open(readme, "era5_output/cli_clim.zarr"), climatology_oracle(readme.source)
    )
