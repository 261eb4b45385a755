"""Notebooks as jobs against a real server and real kernels: parameters injected after the
`parameters` cell, the executed notebook as an artifact (also when a cell fails, named in the
job's message), each cell's start and outputs live in the log, and `progress` moving from 0 to
1; on local, in a container (and a clear failure where the image lacks the packages), and on
Slurm."""

from __future__ import annotations

import json

import nbformat
import pytest

from support import docker_problem, log_text, require, slurm_problem


def notebook(path, *sources: str, parameters: str = "lr = 0.1\nepochs = 1") -> None:
    """A notebook whose first code cell is tagged `parameters`, then `sources`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# training"), first] + [nbformat.v4.new_code_cell(s) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


CELLS = ('print(f"lr={lr} epochs={epochs}")', "import sys\nprint('to stderr', file=sys.stderr)",
         "result = lr * epochs\nresult")


async def executed(api, job_id: str) -> nbformat.NotebookNode:
    got = await api.call("GET", "jobs", job_id, "artifacts", "train.ipynb")
    return nbformat.reads(got.body.decode(), as_version=4)


async def check_parameterised_run(api, job: dict) -> None:
    done = await api.wait(job["id"], timeout=120)
    log = log_text(await api.logs(job["id"]))
    assert done["status"] == "succeeded", (done["message"], log)
    assert (await api.job(job["id"]))["progress"] == 1.0
    assert log.startswith("[jupyter_jobs] cell 1/5\n") and "[jupyter_jobs] cell 5/5\n" in log  # the injected one too
    assert "lr=0.01 epochs=3\n" in log and "to stderr\n" in log and "0.03" in log
    nb = await executed(api, job["id"])
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "lr = 0.01" in injected[0].source and "epochs = 3" in injected[0].source
    assert nb.cells.index(injected[0]) == 2  # right after the `parameters` cell
    assert nb.cells[-1].outputs[0]["data"]["text/plain"] == "0.03"
    progress = (await api.call("GET", "jobs", job["id"], "metrics", params={"names": "progress"}))
    values = progress["series"]["progress"]["values"]
    assert values[0] == 0 and values[-1] == 1 and values == sorted(values) and len(values) == 6


async def test_a_parameterised_notebook_on_local(api, workspace):
    notebook(workspace / "train.ipynb", *CELLS)
    job = await api.submit({"notebook": "train.ipynb", "parameters": {"lr": 0.01, "epochs": 3},
                            "workspace": "proj"})
    assert job["spec"]["notebook"] == "train.ipynb" and job["spec"]["command"] is None
    await check_parameterised_run(api, job)


async def test_a_failing_cell_fails_the_job_and_names_the_cell(api, workspace):
    notebook(workspace / "train.ipynb", "print('before')", "1 / 0", "print('never')")
    job = await api.submit({"notebook": "train.ipynb", "workspace": "proj"})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "failed"
    assert done["message"] == "the notebook failed: cell 3 of 4 raised ZeroDivisionError: division by zero"
    nb = await executed(api, job["id"])  # kept, with the error in it
    assert nb.cells[3].outputs[0]["output_type"] == "error" and nb.cells[4].outputs == []
    assert "before\n" in log_text(await api.logs(job["id"])) and "never" not in log_text(await api.logs(job["id"]))


@pytest.mark.parametrize("spec, field", [
    ({"notebook": "train.ipynb", "command": "echo"}, "notebook"),
    ({"notebook": "missing.ipynb"}, "notebook"),
    ({"notebook": "train.py"}, "notebook"),
    ({"notebook": "../outside.ipynb"}, "notebook"),
    ({"command": "echo", "parameters": {"lr": 1}}, "parameters"),
    ({"notebook": "train.ipynb", "parameters": ["lr"]}, "parameters"),
    ({}, "command"),
])
async def test_bad_notebook_specs_are_400_naming_the_field(api, workspace, spec, field):
    notebook(workspace / "train.ipynb", "print(1)")
    (workspace / "train.py").write_text("print(1)")
    reply = await api.call("POST", "jobs", body={"workspace": "proj", **spec}, expect=400)
    assert field in {e["field"].split(".")[0] for e in reply["errors"]}, reply


@pytest.fixture
def docker_ready():
    require("docker", docker_problem())


async def test_a_parameterised_notebook_in_a_container(api, workspace, docker_ready):
    notebook(workspace / "train.ipynb", *CELLS)
    job = await api.submit({"notebook": "train.ipynb", "parameters": {"lr": 0.01, "epochs": 3},
                            "backend": "docker", "image": "jupyter-jobs/notebook:test", "workspace": "proj"})
    await check_parameterised_run(api, job)


async def test_an_image_without_the_packages_says_so(api, workspace, docker_ready):
    notebook(workspace / "train.ipynb", "print(1)")
    job = await api.submit({"notebook": "train.ipynb", "backend": "docker", "image": "jupyter-jobs/python:test",
                            "workspace": "proj"})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "failed" and "cannot run notebooks" in done["message"]
    assert "pip install papermill ipykernel" in done["message"]


@pytest.fixture
def extra_config(tmp_path):
    from test_slurm import slurm_config

    return slurm_config(tmp_path / "shared")


async def test_a_parameterised_notebook_on_slurm(api, workspace):
    require("slurm", slurm_problem())
    notebook(workspace / "train.ipynb", *CELLS)
    job = await api.submit({"notebook": "train.ipynb", "parameters": {"lr": 0.01, "epochs": 3},
                            "backend": "slurm", "workspace": "proj"})
    await check_parameterised_run(api, job)
    assert json.loads(json.dumps(job["spec"]["parameters"])) == {"lr": 0.01, "epochs": 3}


def test_the_runner_leaves_out_the_one_second_import_no_notebook_needs(tmp_path):
    """jsonschema (through nbformat) would import rfc3987_syntax, which builds its parsers at
    import (about 1 s of each notebook job): the runner blocks it, and the notebook still runs."""
    import importlib.util
    import os
    import subprocess
    import sys
    from pathlib import Path

    import jupyter_jobs.backends.notebook_runner as runner

    assert importlib.util.find_spec("rfc3987_syntax"), "installed here, or this test proves nothing"
    notebook(tmp_path / "train.ipynb", *CELLS)
    out = subprocess.run([sys.executable, runner.__file__, "train.ipynb", "out.ipynb", '{"lr": 0.5}', "python3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "JOB_ARTIFACTS_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "lr=0.5 epochs=1\n" in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "nbformat" in imported and "jsonschema" in imported
    # the blocked attempt is listed (a few µs), its parser-building module never is
    assert not any(name.startswith("rfc3987_syntax.") for name in imported), sorted(imported)
    assert nbformat.read(Path(tmp_path / "out.ipynb"), as_version=4).cells[-1].outputs[0]["data"]["text/plain"] == "0.5"
