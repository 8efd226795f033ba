"""What the package declares about the versions it supports holds together.

CI installs the package twice (``.ci/run``): on Python 3.11 with the lowest
supported versions, pinned in ``.ci/constraints-lowest.txt``, and on Python
3.13 with the newest releases. The pins must be exactly the lower bounds
``setup.py`` states, or the "lowest" run tests something users cannot get.
"""

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def _setup_call_keywords() -> dict[str, ast.expr]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "setup"
            and node.keywords
        ):
            return {k.arg: k.value for k in node.keywords}
    raise AssertionError("setup.py has no setuptools.setup(...) call")


def _lower_bounds() -> dict[str, str]:
    requirements = ast.literal_eval(_setup_call_keywords()["install_requires"])
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9.]*)", requirement)
        assert match, f"{requirement!r} should be written as name>=lowest"
        bounds[match.group(1).lower()] = match.group(2)
    return bounds


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / ".ci" / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_lowest_constraints_pin_exactly_the_lower_bounds_of_setup_py():
    assert _pins() == _lower_bounds()


def test_the_packages_named_by_the_support_policy_have_lower_bounds():
    assert {"zarr", "xarray", "numpy", "pandas", "apache-beam"} <= set(_lower_bounds())


def test_python_requires_and_classifiers_state_the_tested_range():
    keywords = _setup_call_keywords()
    assert ast.literal_eval(keywords["python_requires"]) == ">=3.11"
    classifiers = ast.literal_eval(keywords["classifiers"])
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers


def test_ci_runs_the_readme_command_on_both_stacks():
    script = (REPO / ".ci" / "run").read_text()
    assert "constraints-lowest.txt" in script
    assert "3.11" in script and "3.13" in script
    assert "test-command" in script
