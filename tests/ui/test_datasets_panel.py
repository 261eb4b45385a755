"""Datasets in the panel, in a real browser: the sidebar's Datasets view (a version made from a
folder, the file browser's by default, every bad field named beside it; listed with its files
and size; expanded to its versions and a version's lineage, each job opening its tab; a
deletion refused while a running job reads the version, said in place), a job tab's datasets
read and "Save artifacts as dataset…", and the job form's datasets picker."""

from __future__ import annotations

import time
import urllib.error

import pytest

from conftest import open_job, open_panel, serious_violations, shot, tab
from support import log_text

PANEL = "#jupyter-jobs-panel"
VIEW = f"{PANEL} .jp-JobsDatasets"
FORM = f"{PANEL} .jp-JobsDatasetForm"


def show(page, kind):
    """One of the sidebar's views: Jobs, Datasets..."""
    open_panel(page)
    page.click(f"{PANEL} [role=tab]:has-text('{kind}')")
    assert page.get_attribute(f"{PANEL} [role=tab]:has-text('{kind}')", "aria-selected") == "true"


def field_error(page, form, field):
    return page.wait_for_selector(f"{form} .jp-JobsField[data-field='{field}'] .jp-JobsField-error").inner_text()


def no_field_error(page, form, field):
    return page.locator(f"{form} .jp-JobsField[data-field='{field}'] .jp-JobsField-error").count() == 0


def dataset_row(name):
    return f"{VIEW} .jp-JobsDataset[data-dataset='{name}']"


def version_row(name, version):
    return f"{dataset_row(name)} .jp-JobsDatasetVersion[data-version='{version}']"


def confirm_delete(page, name, version):
    page.click(f"{version_row(name, version)} button:has-text('Delete')")
    assert f"version {version} of “{name}”" in page.inner_text(".jp-Dialog-content")
    page.click(".jp-Dialog button:has-text('Delete')")


def test_datasets_from_a_folder_and_a_jobs_artifacts_with_their_lineage(page, lab):
    data = lab.root / "proj" / "mnist"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "b.txt").write_text("beta!")
    (data / "sub" / "c.txt").write_text("gamma")

    # the file browser in proj: a new dataset's folder starts there
    if not page.is_visible(".jp-DirListing"):
        page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.wait_for_selector(".jp-DirListing-item:has-text('mnist')")
    show(page, "Datasets")
    page.wait_for_selector(f"{VIEW} .jp-JobsEmpty:has-text('No datasets yet')")
    page.click(f"{VIEW} > .jp-JobsButtons button:has-text('New version…')")
    assert page.input_value(f"{FORM} [name='folder']") == "proj"
    assert page.input_value(f"{FORM} [name='name']") == ""

    # bad fields are named beside them, one answer at a time, and nothing is made
    page.click(f"{FORM} button[type=submit]")
    assert "name" in field_error(page, FORM, "name")
    page.fill(f"{FORM} [name='name']", "Not a name!")
    page.fill(f"{FORM} [name='folder']", "proj/mnist")
    page.click(f"{FORM} button[type=submit]")
    page.wait_for_selector(f"{FORM} .jp-JobsField[data-field='name'] .jp-JobsField-error:has-text('Not a name!')")
    assert "1 field to fix" in page.inner_text(f"{FORM} .jp-JobsError")
    page.fill(f"{FORM} [name='name']", "mnist")
    page.fill(f"{FORM} [name='folder']", "proj/no-such-folder")
    page.click(f"{FORM} button[type=submit]")
    page.wait_for_selector(f"{FORM} .jp-JobsField[data-field='folder'] .jp-JobsField-error")
    assert no_field_error(page, FORM, "name")
    assert lab.request("GET", "/jupyter-jobs/datasets")["datasets"] == []
    assert not serious_violations(page, PANEL)

    # made: the form closes, the dataset is listed with its newest version, expanded to it
    page.fill(f"{FORM} [name='folder']", "proj/mnist")
    page.click(f"{FORM} button[type=submit]")
    page.wait_for_selector(FORM, state="detached")
    note = page.wait_for_selector(f"{VIEW} .jp-JobsDataset-madeNote").inner_text()
    assert "Made mnist v1: 3 files, 15 bytes." in note
    row = dataset_row("mnist")
    assert page.inner_text(f"{row} .jp-JobsDataset-latest") == "v1 · 3 files, 15 bytes"
    assert page.inner_text(f"{row} .jp-JobsDataset-count") == "1 version"
    made = page.inner_text(f"{row} > .jp-JobsDataset-made")
    assert "from folder proj/mnist" in made and " by " in made
    made_rest = lab.request("GET", "/jupyter-jobs/datasets/mnist")["versions"]
    assert [(v["version"], v["files"], v["size"], v["source"]) for v in made_rest] == \
        [(1, 3, 15, {"folder": "proj/mnist"})]
    v1 = version_row("mnist", 1)
    assert page.get_attribute(f"{v1} .jp-JobsSchedule-toggle", "aria-expanded") == "true"
    page.wait_for_selector(f"{v1} .jp-JobsDataset-lineage p:has-text('No job yet.')")

    # a job that reads it (over REST): in the version's "read by", live, opening its tab
    reader = lab.request("POST", "/jupyter-jobs/jobs", {"command": "cat $JOB_DATASETS_DIR/mnist/a.txt",
                                                        "workspace": "proj", "datasets": [{"name": "mnist"}]})
    assert reader["spec"]["datasets"] == [{"name": "mnist", "version": 1, "mount": None}]
    assert lab.wait(reader["id"])["status"] == "succeeded"
    assert log_text(lab.logs(reader["id"]), "stdout") == "alpha"
    read_by = f"{v1} .jp-JobsDataset-readers li[data-job-id='{reader['id']}']"
    page.wait_for_selector(f"{read_by}[data-status='succeeded']", timeout=10_000)
    page.click(f"{read_by} button")
    view = f".jp-JobsView[data-job-id='{reader['id']}']"
    page.wait_for_selector(view, state="visible")
    details = tab(page, "details")
    read = details.query_selector(".jp-JobsDatasetsRead li[data-dataset='mnist']").inner_text()
    assert read == "mnist v1 at $JOB_DATASETS_DIR/mnist"
    assert "Save artifacts as dataset…" in page.inner_text(f"{view} [role=toolbar]")
    # its dataset opens the Datasets view at that version
    page.click(f"{view} .jp-JobsDatasetsRead button:has-text('mnist v1')")
    page.wait_for_selector(f"{v1} .jp-JobsDataset-readers li[data-job-id='{reader['id']}']", state="visible")

    # a second version, from the row's "New version…" (its folder again, by default)
    (data / "a.txt").write_text("ALPHA, changed")
    page.click(f"{row} > .jp-JobsButtons button:has-text('New version…')")
    assert page.input_value(f"{row} .jp-JobsDatasetForm [name='folder']") == "proj/mnist"
    assert page.input_value(f"{row} .jp-JobsDatasetForm [name='name']") == "mnist"
    page.click(f"{row} .jp-JobsDatasetForm button[type=submit]")
    page.wait_for_selector(f"{row} .jp-JobsDataset-latest:has-text('v2 · 3 files, 24 bytes')")
    assert page.inner_text(f"{row} .jp-JobsDataset-count") == "2 versions"
    versions = page.locator(f"{row} .jp-JobsDatasetVersion").evaluate_all("rows => rows.map(r => r.dataset.version)")
    assert versions == ["2", "1"]

    # deleting v1 while a running job reads it: refused, and the server's words said in place
    blocker = lab.request("POST", "/jupyter-jobs/jobs", {"command": "sleep 60", "workspace": "proj",
                                                         "datasets": [{"name": "mnist", "version": 1}]})
    lab.wait(blocker["id"], {"running"})
    page.click(f"{v1} button:has-text('Delete')")
    page.click(".jp-Dialog button:has-text('Cancel')")  # asked first: Cancel keeps it, no request
    assert page.locator(f"{v1} .jp-JobsDataset-error").count() == 0
    confirm_delete(page, "mnist", 1)
    refused = page.wait_for_selector(f"{v1} .jp-JobsDataset-error[role=alert]").inner_text()
    assert f"is held by job {blocker['id']} (running)" in refused
    assert lab.request("GET", "/jupyter-jobs/datasets/mnist/versions/1")["version"] == 1
    time.sleep(2.5)  # polled again: still there, still said
    assert page.is_visible(v1) and page.is_visible(f"{v1} .jp-JobsDataset-error")
    assert page.get_attribute(f"{v1} .jp-JobsSchedule-toggle", "aria-expanded") == "false"  # v2 is, since made
    page.click(f"{v1} .jp-JobsSchedule-toggle")  # its lineage: the running job among its readers
    assert page.get_attribute(f"{version_row('mnist', 2)} .jp-JobsSchedule-toggle", "aria-expanded") == "false"
    page.wait_for_selector(f"{v1} .jp-JobsDataset-readers li[data-job-id='{blocker['id']}'][data-status='running']")
    assert not serious_violations(page, PANEL)
    shot(page, "datasets")

    # once it is cancelled, the deletion goes through
    lab.request("POST", f"/jupyter-jobs/jobs/{blocker['id']}/cancel", {})
    lab.wait(blocker["id"])
    confirm_delete(page, "mnist", 1)
    page.wait_for_selector(v1, state="detached")
    with pytest.raises(urllib.error.HTTPError) as gone:
        lab.request("GET", "/jupyter-jobs/datasets/mnist/versions/1")
    assert gone.value.code == 404
    page.wait_for_selector(f"{row} .jp-JobsDataset-count:has-text('1 version')")

    # a finished job's artifacts (a folder of them) saved as a dataset from its tab
    train = lab.request("POST", "/jupyter-jobs/jobs", {"workspace": "proj", "command": (
        "mkdir $JOB_ARTIFACTS_DIR/out && printf weights > $JOB_ARTIFACTS_DIR/out/model.txt && "
        "printf notes > $JOB_ARTIFACTS_DIR/other.txt")})
    lab.wait(train["id"])
    show(page, "Jobs")
    page.click(f".jp-JobsRow[data-job-id='{train['id']}']")
    view = f".jp-JobsView[data-job-id='{train['id']}']"
    page.wait_for_selector(f"{view}[data-status='succeeded']", state="visible")
    page.click(f"{view} button:has-text('Save artifacts as dataset…')")
    save = f"{view} .jp-JobsSaveDataset"
    page.fill(f"{save} [name='name']", "features")
    page.fill(f"{save} [name='path']", "no-such-file.txt")
    page.click(f"{save} button[type=submit]")
    assert "no-such-file.txt" in field_error(page, save, "path")
    assert no_field_error(page, save, "name")
    assert not serious_violations(page, view)
    page.fill(f"{save} [name='path']", "out")
    page.click(f"{save} button[type=submit]")
    saved = page.wait_for_selector(f"{view} .jp-JobsSaveDataset-made[data-dataset='features'][data-version='1']")
    assert "Saved as features v1: 1 file, 7 bytes." in saved.inner_text()
    features = lab.request("GET", "/jupyter-jobs/datasets/features/versions/1")
    assert (features["job"], features["source"], features["files"]) == \
        (train["id"], {"job": train["id"], "path": "out"}, 1)
    page.click(f"{view} button:has-text('Show in Datasets')")
    f1 = version_row("features", 1)
    page.wait_for_selector(f"{f1} .jp-JobsDataset-maker:has-text('{train['id']}')", state="visible")
    assert "job " in page.inner_text(f"{dataset_row('features')} > .jp-JobsDataset-made")
    page.click(f"{f1} .jp-JobsDataset-maker button")  # the job that made it opens
    page.wait_for_selector(f"{view}", state="visible")

    # the job form's picker: a dataset at a version, in the spec it submits
    open_panel(page)
    page.click("text=New job")
    page.fill(f"{PANEL} [name='name']", "reads-features")
    page.fill(f"{PANEL} [name='command']", "cat $JOB_DATASETS_DIR/features/model.txt")
    page.fill(f"{PANEL} [name='workspace']", "proj")
    picker = f"{PANEL} .jp-JobsDatasetsField"
    page.wait_for_selector(f"{picker} select[name='dataset'] option[value='features']", state="attached")
    page.select_option(f"{picker} select[name='dataset']", "features")
    page.wait_for_selector(f"{picker} select[name='dataset-version'] option[value='1']", state="attached")
    assert "newest (now v1)" in page.inner_text(f"{picker} select[name='dataset-version']")
    page.select_option(f"{picker} select[name='dataset-version']", "1")
    page.click(f"{picker} button:has-text('Add')")
    assert page.inner_text(f"{picker} .jp-JobsDatasetsChosen li[data-dataset='features']").startswith("features v1")
    page.select_option(f"{picker} select[name='dataset']", "mnist")  # newest: resolved at submit
    page.click(f"{picker} button:has-text('Add')")
    assert page.locator(f"{picker} select[name='dataset'] option[value='features']").count() == 0  # chosen once
    assert not serious_violations(page, f"{PANEL} .jp-JobsForm")
    page.click(f"{PANEL} button[type=submit]")
    known = [reader["id"], train["id"]]
    page.wait_for_function("known => [...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           ".some(v => v.offsetParent && !known.includes(v.dataset.jobId))", arg=known)
    job_id = page.evaluate("known => [...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           ".find(v => v.offsetParent && !known.includes(v.dataset.jobId)).dataset.jobId", known)
    submitted = lab.wait(job_id)
    assert submitted["spec"]["name"] == "reads-features"
    assert submitted["spec"]["datasets"] == [{"name": "features", "version": 1, "mount": None},
                                             {"name": "mnist", "version": 2, "mount": None}]
    assert submitted["status"] == "succeeded" and log_text(lab.logs(job_id), "stdout") == "weights"


def test_a_jobs_outputs_show_the_versions_they_became(page, lab):
    """A job's tab lists its declared outputs; a kept one opens its version in the Datasets view."""
    job = lab.request("POST", "/jupyter-jobs/jobs", {
        "command": "echo f > $JOB_OUTPUTS_DIR/data/f.txt", "workspace": "proj",
        "outputs": {"data": {"type": "dataset", "name": "features"}, "cache": {"type": "volume"}}})
    assert lab.wait(job["id"])["status"] == "succeeded"
    assert lab.request("GET", f"/jupyter-jobs/jobs/{job['id']}/versions")["datasets"][0]["version"] == 1
    open_job(page, job["id"])
    details = tab(page, "details")
    kept = details.wait_for_selector(".jp-JobsOutputs li[data-output='data'] .jp-JobsOutputs-kept")
    assert kept.inner_text() == "kept as features v1"
    volume = details.query_selector(".jp-JobsOutputs li[data-output='cache']").inner_text()
    assert volume == "cache → a volume, /inputs/cache for the jobs after it"
    assert serious_violations(page, f".jp-JobsView[data-job-id='{job['id']}'] .jp-JobsOutputs") == []
    kept.click()
    page.wait_for_selector(f"{version_row('features', 1)} .jp-JobsDataset-lineage", state="visible")
