"""Sphinx configuration: the Markdown pages in docs/ and the API reference."""

import pathlib
import shutil

import xarray_beam

project = "xarray_beam"
author = "xarray_beam authors"
copyright = "the xarray_beam authors"
version = release = xarray_beam.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_templates"]
templates_path = ["_templates"]

# Pages link to sections as `zarr.md#never-losing-data`.
myst_heading_anchors = 3

# The API pages are written at build time into docs/generated/ (not committed).
# Starting afresh drops the pages of names no longer listed in api.md, which
# would otherwise be orphans (a warning, so a failed build).
shutil.rmtree(pathlib.Path(__file__).parent / "generated", ignore_errors=True)
autosummary_generate = True
autodoc_member_order = "bysource"
# Show our own docstrings only, not those of the Beam methods we override.
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"xarray_beam {release}"
