"""Packaging for xarray_beam (Dataflow workers install it with --setup_file)."""

import pathlib
import re

import setuptools

_HERE = pathlib.Path(__file__).parent
# The docs build runs in the test suite, so the test extra includes it.
_DOCS = ["sphinx>=7", "myst-parser>=3", "furo>=2024.1", "matplotlib>=3.8"]
_VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (_HERE / "xarray_beam" / "__init__.py").read_text(),
    re.M,
).group(1)

setuptools.setup(
    name="xarray_beam",
    version=_VERSION,
    description="Apache Beam transforms over chunked xarray data, with bounded memory.",
    long_description=(_HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["xarray_beam", "xarray_beam.*"]),
    # Tested on Python 3.11 with the lower bounds below (pinned in
    # .ci/constraints-lowest.txt) and on Python 3.13 with the newest releases.
    python_requires=">=3.11",
    install_requires=[
        "apache-beam>=2.60.0",
        "dask>=2024.8.0",
        "fsspec>=2024.12.0",
        # Key.offsets and Key.indices are immutabledicts, as in xarray-beam.
        "immutabledict>=4.3.1",
        "numcodecs>=0.16.1",
        "numpy>=1.26.0",
        "pandas>=2.2.0",
        "xarray>=2025.10.0",
        "zarr>=3.1.2",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "mypy>=1.10",
            # Beam's DaskRunner, which the tests show is refused.
            "dask[distributed]>=2024.8.0",
            "gcsfs>=2024.12.0",
            "s3fs>=2024.12.0",
            "moto[server]>=5.0",
            "gcp-storage-emulator>=2024.8.3",
            "apache-beam[gcp]>=2.60",
            "build>=1.0",
            # Beam builds the package for Dataflow workers with setuptools,
            # which Python 3.12+ virtual environments no longer include.
            "setuptools>=64",
            *_DOCS,
        ],
        "examples": ["matplotlib>=3.8"],
        "gcp": ["gcsfs>=2024.12.0", "apache-beam[gcp]>=2.60.0", "setuptools>=64"],
        "s3": ["s3fs>=2024.12.0"],
        "docs": _DOCS,
    },
    entry_points={"console_scripts": ["xarray-beam=xarray_beam.programs.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Atmospheric Science",
    ],
)
