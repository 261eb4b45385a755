"""Notebook jobs, on the service's side: how one runs (the runner's source, handed to the job
whole, so any image with papermill and ipykernel can run it), and what it said went wrong."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

from ..storage.files import read_regular

STATUS_FILE = "notebook.json"  # beside the job's metrics file, written by the runner


@functools.cache
def runner_source() -> str:
    return (Path(__file__).with_name("notebook_runner.py")).read_text()


def missing(workspace: Path, notebook: str) -> Optional[str]:
    """Why `notebook` cannot run from `workspace` (None when it can): it must be a file inside."""
    path = (workspace / notebook).resolve()
    if not path.is_relative_to(workspace.resolve()):
        return "must be a notebook inside the workspace"
    if not path.is_file():
        return f"no notebook {notebook!r} in the workspace"
    return None


def failure(metrics_dir: Path) -> Optional[str]:
    """The runner's own account of a failure (the cell that raised, or missing packages); the
    file is the job's, so it is read without following links and only so far."""
    raw = read_regular(metrics_dir / STATUS_FILE, 65536)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    message = data.get("message") if isinstance(data, dict) and data.get("status") == "failed" else None
    return message[:2000] if isinstance(message, str) and message else None
