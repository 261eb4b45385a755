"""When the service keeps its jobs under the server's root, a job's artifacts are reachable in
JupyterLab itself: the file browser shows their folder and a notebook opens where it is."""

from __future__ import annotations

import json

import pytest

from conftest import open_job, tab

NOTEBOOK = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# in place"]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def lab_extra(tmp_path):
    """The service's data folder, seen from the root as jobs-data/."""
    (tmp_path / "root" / "jobs-data").mkdir(parents=True)
    (tmp_path / "data").symlink_to(tmp_path / "root" / "jobs-data")
    return []


def test_artifacts_open_in_the_file_browser_and_in_place(page, lab):
    (lab.root / "proj" / "nb.py").write_text(
        f"import json, os\nopen(os.environ['JOB_ARTIFACTS_DIR'] + '/out.ipynb', 'w').write(json.dumps({NOTEBOOK!r}))\n")
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "python nb.py", "workspace": "proj"})
    lab.wait(job["id"])
    folder = lab.request("GET", f"/jupyter-jobs/jobs/{job['id']}/artifacts")["folder"]
    assert folder.startswith("jobs-data/") and folder.endswith("/artifacts")
    open_job(page, job["id"])
    tab(page, "artifacts")
    page.click(".jp-JobsArtifactsTab button:has-text('Show in the file browser')")
    page.wait_for_selector(".jp-DirListing-item:has-text('out.ipynb')", state="visible")
    assert page.inner_text(".jp-FileBrowser .jp-BreadCrumbs").rstrip("/").endswith("artifacts")
    open_job(page, job["id"])
    tab(page, "artifacts")
    page.click(".jp-JobsArtifacts button:has-text('out.ipynb')")
    page.click(".jp-JobsPreview button:has-text('Open in JupyterLab')")
    page.wait_for_selector(".jp-NotebookPanel h1:has-text('in place')", state="visible")
    assert not (lab.root / "job-outputs").exists()  # opened where it is, not copied
    assert json.loads((lab.root / folder / "out.ipynb").read_text())["cells"][0]["source"] == ["# in place"]
