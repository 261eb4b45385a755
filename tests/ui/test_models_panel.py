"""Models in the panel, in a real browser: a finished job's artifacts registered as a model from
its tab ("Register as model…": a bad name's 400 said beside the field; then the version made),
the sidebar's Models view (the Datasets view told another kind: its framework, description,
the job's final metrics and the datasets it read, its lineage, a zip download, a deletion
refused while a running job reads it, then done), and a job tab's "models read"."""

from __future__ import annotations

import io
import urllib.error
import zipfile

import pytest

from conftest import open_job, serious_violations, shot, tab
from support import log_text

PANEL = "#jupyter-jobs-panel"
VIEW = f"{PANEL} .jp-JobsDatasets[data-kind='models']"
TRAIN = (
    "echo '{\"step\": 1, \"loss\": 0.5, \"acc\": 0.8}' >> $JOB_METRICS_FILE && "
    "echo '{\"step\": 2, \"loss\": 0.25, \"acc\": 0.9}' >> $JOB_METRICS_FILE && "
    "mkdir $JOB_ARTIFACTS_DIR/out && printf weights > $JOB_ARTIFACTS_DIR/out/model.pt && "
    "printf notes > $JOB_ARTIFACTS_DIR/notes.txt"
)


def model_row(name):
    return f"{VIEW} .jp-JobsDataset[data-dataset='{name}']"


def version_row(name, version):
    return f"{model_row(name)} .jp-JobsDatasetVersion[data-version='{version}']"


def field_error(page, form, field):
    return page.wait_for_selector(f"{form} .jp-JobsField[data-field='{field}'] .jp-JobsField-error").inner_text()


def test_a_model_registered_from_a_jobs_tab_with_its_metrics_and_lineage(page, lab):
    data = lab.root / "proj" / "mnist"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    lab.request("POST", "/jupyter-jobs/datasets/mnist/versions", {"folder": "proj/mnist"})
    train = lab.request("POST", "/jupyter-jobs/jobs", {"workspace": "proj", "command": TRAIN, "name": "train",
                                                       "datasets": [{"name": "mnist"}]})
    assert lab.wait(train["id"])["status"] == "succeeded"

    # the job's tab: "Register as model…", and a bad name's 400 said beside its field
    view = f".jp-JobsView[data-job-id='{train['id']}']"
    open_job(page, train["id"])
    page.wait_for_selector(f"{view}[data-status='succeeded']")
    page.click(f"{view} [role=toolbar] button:has-text('Register as model…')")
    form = f"{view} .jp-JobsSaveDataset[data-kind='models']"
    page.wait_for_selector(form)
    assert page.input_value(f"{form} [name='path']") == ""  # all its artifacts, unless told
    page.fill(f"{form} [name='name']", "Classifier")
    page.fill(f"{form} [name='framework']", "pytorch")
    page.click(f"{form} button[type=submit]")
    said = field_error(page, form, "name")
    assert "'Classifier' is not a model name" in said
    assert "1 field to fix" in page.inner_text(f"{form} .jp-JobsError")
    assert lab.request("GET", "/jupyter-jobs/models")["models"] == []
    page.fill(f"{form} [name='name']", "classifier")
    page.fill(f"{form} [name='path']", "no-such-file")
    page.click(f"{form} button[type=submit]")
    assert "no-such-file" in field_error(page, form, "path")
    assert page.locator(f"{form} .jp-JobsField[data-field='name'] .jp-JobsField-error").count() == 0
    assert not serious_violations(page, view)

    # registered: the version made, in words
    page.fill(f"{form} [name='path']", "out")
    page.fill(f"{form} [name='description']", "a tiny classifier")
    page.click(f"{form} button[type=submit]")
    made = page.wait_for_selector(f"{view} .jp-JobsSaveDataset-made[data-dataset='classifier'][data-version='1']")
    assert "Registered as classifier v1: 1 file, 7 bytes." in made.inner_text()
    rest = lab.request("GET", "/jupyter-jobs/models/classifier/versions/1")
    assert (rest["framework"], rest["description"], rest["job"]) == ("pytorch", "a tiny classifier", train["id"])
    assert rest["source"] == {"job": train["id"], "path": "out"}
    assert rest["metrics"]["loss"] == 0.25 and rest["metrics"]["acc"] == 0.9
    assert [d["name"] for d in rest["datasets"]] == ["mnist"]

    # the Models view, at that version: framework, description, final metrics, datasets, lineage
    page.click(f"{view} button:has-text('Show in Models')")
    assert page.get_attribute(f"{PANEL} [role=tab]:has-text('Models')", "aria-selected") == "true"
    row, v1 = model_row("classifier"), version_row("classifier", 1)
    page.wait_for_selector(f"{v1} .jp-JobsDataset-maker:has-text('{train['id']}')", state="visible")
    assert page.inner_text(f"{row} .jp-JobsDataset-latest") == "v1 · 1 file, 7 bytes"
    assert page.inner_text(f"{row} > .jp-JobsModel-framework") == "pytorch"
    assert "framework pytorch" in page.inner_text(f"{v1} .jp-JobsModelFacts")
    assert page.inner_text(f"{v1} .jp-JobsModel-description") == "a tiny classifier"
    assert page.inner_text(f"{v1} .jp-JobsModel-metrics li[data-metric='loss']") == "loss 0.25"
    assert page.inner_text(f"{v1} .jp-JobsModel-metrics li[data-metric='acc']") == "acc 0.9"
    assert page.inner_text(f"{v1} .jp-JobsModel-datasets li[data-dataset='mnist']") == "mnist v1"
    page.wait_for_selector(f"{v1} .jp-JobsDataset-lineage p:has-text('No job yet.')")

    # its files download as one zip
    link = f"{v1} a.jp-JobsDataset-download"
    assert page.get_attribute(link, "href").endswith("/jupyter-jobs/models/classifier/versions/1/download")
    with page.expect_download() as download:
        page.click(link)
    assert download.value.suggested_filename == "classifier-v1.zip"
    with zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())) as archive:
        assert archive.namelist() == ["model.pt"] and archive.read("model.pt") == b"weights"

    # a job that reads it: in the version's "read by", and its tab's "models read"
    reader = lab.request("POST", "/jupyter-jobs/jobs", {"workspace": "proj", "models": [{"name": "classifier"}],
                                                        "command": "cat $JOB_MODELS_DIR/classifier/model.pt"})
    assert lab.wait(reader["id"])["status"] == "succeeded"
    assert log_text(lab.logs(reader["id"]), "stdout") == "weights"
    read_by = f"{v1} .jp-JobsDataset-readers li[data-job-id='{reader['id']}']"
    page.wait_for_selector(f"{read_by}[data-status='succeeded']", timeout=10_000)
    assert not serious_violations(page, PANEL)
    shot(page, "models")
    page.click(f"{read_by} button")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{reader['id']}']", state="visible")
    details = tab(page, "details")
    read = details.query_selector(".jp-JobsDatasetsRead[data-kind='models'] li[data-dataset='classifier']")
    assert read.inner_text() == "classifier v1 at $JOB_MODELS_DIR/classifier"
    read.query_selector("button").click()  # back to the Models view, at that version
    page.wait_for_selector(f"{read_by}", state="visible")

    # deleting it while a running job reads it: refused, said in place; then done
    blocker = lab.request("POST", "/jupyter-jobs/jobs", {"workspace": "proj", "command": "sleep 60",
                                                         "models": [{"name": "classifier", "version": 1}]})
    lab.wait(blocker["id"], {"running"})
    page.click(f"{v1} button:has-text('Delete')")
    assert "version 1 of “classifier”" in page.inner_text(".jp-Dialog-content")
    assert "Delete model version" in page.inner_text(".jp-Dialog-header")
    page.click(".jp-Dialog button:has-text('Delete')")
    refused = page.wait_for_selector(f"{v1} .jp-JobsDataset-error[role=alert]").inner_text()
    assert f"is held by job {blocker['id']} (running)" in refused
    lab.request("POST", f"/jupyter-jobs/jobs/{blocker['id']}/cancel", {})
    lab.wait(blocker["id"])
    page.click(f"{v1} button:has-text('Delete')")
    page.click(".jp-Dialog button:has-text('Delete')")
    page.wait_for_selector(row, state="detached")
    page.wait_for_selector(f"{VIEW} .jp-JobsEmpty:has-text('No models yet')")
    with pytest.raises(urllib.error.HTTPError) as gone:
        lab.request("GET", "/jupyter-jobs/models/classifier/versions/1")
    assert gone.value.code == 404


def test_the_job_form_picks_a_model_version_to_read(page, lab):
    """The New job form's Models picker puts the version in the spec the job runs with."""
    from conftest import open_panel

    maker = lab.request("POST", "/jupyter-jobs/jobs", {"command": TRAIN, "workspace": "proj"})
    assert lab.wait(maker["id"])["status"] == "succeeded"
    lab.request("POST", "/jupyter-jobs/models/digits/versions", {"job": maker["id"], "path": "out"})
    open_panel(page)
    page.click("text=New job")
    page.fill(f"{PANEL} [name='name']", "reads-digits")
    page.fill(f"{PANEL} [name='command']", "cat $JOB_MODELS_DIR/digits/model.pt")
    page.fill(f"{PANEL} [name='workspace']", "proj")
    picker = f"{PANEL} .jp-JobsDatasetsField[data-kind='models']"
    page.wait_for_selector(f"{picker} select[name='model'] option[value='digits']", state="attached")
    page.select_option(f"{picker} select[name='model']", "digits")
    page.wait_for_selector(f"{picker} select[name='model-version'] option[value='1']", state="attached")
    page.select_option(f"{picker} select[name='model-version']", "1")
    page.click(f"{picker} button:has-text('Add')")
    assert page.inner_text(f"{picker} .jp-JobsDatasetsChosen li[data-dataset='digits']").startswith("digits v1")
    assert not serious_violations(page, f"{PANEL} .jp-JobsForm")
    page.click(f"{PANEL} button[type=submit]")
    page.wait_for_function("maker => [...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           ".some(v => v.offsetParent && v.dataset.jobId !== maker)", arg=maker["id"])
    job_id = page.evaluate("maker => [...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           ".find(v => v.offsetParent && v.dataset.jobId !== maker).dataset.jobId", maker["id"])
    done = lab.wait(job_id)
    assert done["spec"]["models"] == [{"name": "digits", "version": 1, "mount": None}]
    assert done["status"] == "succeeded" and log_text(lab.logs(job_id), "stdout") == "weights"
