"""Every docstring example in the package runs and shows what it claims."""

import doctest
import importlib
import pkgutil

import pytest

import xarray_beam

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(xarray_beam.__path__, "xarray_beam.")
    if info.name != "xarray_beam.__main__"  # importing it runs the command
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
