"""``python -m xarray_beam``: the ``xarray-beam`` command."""

import sys

from xarray_beam.programs.cli import main

sys.exit(main())
