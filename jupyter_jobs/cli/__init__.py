"""`jupyter jobs`: the command-line face, as thin as the REST handlers."""

from .main import main, run_main

__all__ = ["main", "run_main"]
