"""`python -m jupyter_jobs.cli`: the CLI through a given interpreter, for where the
`jupyter-jobs` script is not on PATH (a virtual environment used without activating it)."""

from .main import run_main

run_main()
