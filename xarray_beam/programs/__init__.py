"""What users run: the ``xarray-beam`` command (``cli``), the jobs it runs
(``jobs``), launching helpers (``launch``) and the progress bar
(``progress``)."""
