"""What Binder does, as far as this machine allows: a fresh virtual environment with the binder
requirements, binder/postBuild, both extensions enabled, a server, and every demo notebook
executed headless with nbclient against it (each notebook asserts its own results)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import ServerProcess

REPO = Path(__file__).resolve().parent.parent
DEMOS = REPO / "binder" / "demos"
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", sys.argv[1], len(nb.cells), "cells")
"""


def run(cmd: list, env: dict, timeout: int = 900) -> str:
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    venv = tmp_path_factory.mktemp("binder") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], env)
    log = run(["bash", "binder/postBuild"], env)
    return venv, env, log


def test_post_build_enables_both_extensions(binder_env):
    venv, env, log = binder_env
    assert "jupyter_jobs" in log and "jupyter-jobs" in log
    servers = run([str(venv / "bin" / "jupyter"), "server", "extension", "list"], env)
    labs = run([str(venv / "bin" / "jupyter"), "labextension", "list"], env)
    assert "jupyter_jobs" in servers and "enabled" in servers.split("jupyter_jobs", 1)[1].splitlines()[0]
    assert "jupyter-jobs" in labs and "enabled" in labs.split("jupyter-jobs", 1)[1].splitlines()[0]


@pytest.mark.parametrize("notebook", sorted(p.name for p in DEMOS.glob("*.ipynb")))
def test_demo_notebook_runs(binder_env, tmp_path, notebook):
    venv, env, _ = binder_env
    server = ServerProcess(DEMOS, tmp_path / "data", python=str(venv / "bin" / "python"), env=env).start()
    try:
        kernel_env = {**env, "JUPYTER_JOBS_URL": server.url + "/", "JUPYTER_JOBS_TOKEN": server.token,
                      "JUPYTER_JOBS_ROOT": str(DEMOS)}
        out = run([str(venv / "bin" / "python"), "-c", RUNNER, str(DEMOS / notebook), str(DEMOS)], kernel_env)
        assert f"executed {DEMOS / notebook}" in out
        jobs = server.request("GET", "/jupyter-jobs/jobs")["jobs"]
        assert jobs, "the notebook's jobs ran on the server"
    finally:
        server.stop()


def test_the_cli_demo_runs_from_a_venv_that_is_not_activated(tmp_path):
    """Jupyter started as `.venv/bin/jupyter lab` without activating the venv: its `bin` is not
    on PATH, so the demo must run the CLI through the kernel's own interpreter, not by name."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != bin_dir)
    env = {**os.environ, "PATH": path}
    env.pop("VIRTUAL_ENV", None)
    server = ServerProcess(DEMOS, tmp_path / "data", env=env).start()
    try:
        kernel_env = {**env, "JUPYTER_JOBS_URL": server.url + "/", "JUPYTER_JOBS_TOKEN": server.token,
                      "JUPYTER_JOBS_ROOT": str(DEMOS)}
        notebook = DEMOS / "04-workflows-and-schedules.ipynb"
        out = run([sys.executable, "-c", RUNNER, str(notebook), str(DEMOS)], kernel_env, timeout=300)
        assert f"executed {notebook}" in out
    finally:
        server.stop()


def test_the_lab_script_runs_the_demos_in_a_copy_git_ignores():
    """`bash scripts/lab` opens JupyterLab on a copy of the demos: running them (outputs saved,
    files the jobs write) never changes the repository's tracked files."""
    import pwd

    # the user's own HOME (pytest-jupyter points it at a temporary folder): pip reads its settings there
    env = {**os.environ, "JUPYTER_JOBS_LAB_DRY_RUN": "1", "HOME": pwd.getpwuid(os.getuid()).pw_dir}
    out = run(["bash", "scripts/lab"], env, timeout=300)
    root = REPO / next(a.split("=", 1)[1] for a in out.split() if a.startswith("--ServerApp.root_dir="))
    demos = sorted(p.name for p in DEMOS.glob("*.ipynb"))
    assert demos and sorted(p.name for p in root.glob("*.ipynb")) == demos
    tracked = subprocess.run(["git", "ls-files", str(root)], cwd=REPO, capture_output=True, text=True)
    assert tracked.returncode == 0 and tracked.stdout == "", f"{root} holds tracked files"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(root / demos[0])], cwd=REPO)
    assert ignored.returncode == 0, "the copy is ignored by git: saving a demo shows no change"
