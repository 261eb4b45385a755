"""jupyter_jobs: run a notebook folder's code as a job (local process, GPU container or Slurm)
and watch it live from the notebook, the JupyterLab panel or the REST API."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext jupyter_jobs`: the %%job and %job magics."""
    from .kernel.magics import JobMagics

    ipython.register_magics(JobMagics(ipython))


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-jobs"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.extension import JobsApp

    return [{"module": "jupyter_jobs.server.extension", "app": JobsApp}]
