"""The package type-checks with mypy, with zero errors, on the installed stack.

CI runs the suite on the lowest and the newest supported dependencies, so
this holds for both (the configuration is in pyproject.toml).
"""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_package_type_checks_with_mypy(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
