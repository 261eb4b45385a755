"""Notebook jobs in the panel, in a real browser: "Run as Job" from a notebook's toolbar and
from the file browser opens the form with the notebook and the parameters its `parameters`
cell declares; the job's progress shows as a bar while it runs; the executed notebook opens
in JupyterLab with the parameters the job was given."""

from __future__ import annotations

import shlex

import nbformat

from conftest import serious_violations, shot

PARAMETERS = """\
import os
lr = 0.1  # learning rate
epochs = 2
label = 'baseline'
layers = [64, 32]
augment = True
seed = None
eps = 1e-08
data_dir = os.environ.get("DATA", "data")
"""
# what the form shows for it: data_dir is not a literal, so it is left to the notebook
DETECTED = "lr=0.1\nepochs=2\nlabel=baseline\nlayers=[64, 32]\naugment=true\nseed=null\neps=1.0e-8"


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    steps = [nbformat.v4.new_code_cell(f"time.sleep(0.8)\nprint('step {i}')") for i in range(4)]
    nb.cells = [nbformat.v4.new_markdown_cell("# training"), nbformat.v4.new_code_cell("import time"),
                parameters, *steps, nbformat.v4.new_code_cell("print(f'lr={lr} label={label}')")]
    nbformat.write(nb, path)


def browse_proj(page) -> None:
    if not page.is_visible(".jp-DirListing"):
        page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.wait_for_selector(".jp-DirListing-item:has-text('train.ipynb')")


def check_prefilled_form(page) -> None:
    form = "#jupyter-jobs-panel .jp-JobsForm"
    page.wait_for_selector(form, state="visible")
    assert page.is_checked(f"{form} input[name='runs'][value='notebook']")
    assert page.locator(f"{form} [name='command']").count() == 0  # a notebook job has no command
    assert page.input_value(f"{form} [name='notebook']") == "train.ipynb"
    assert page.input_value(f"{form} [name='workspace']") == "proj"
    assert page.input_value(f"{form} [name='name']") == "train"
    assert page.input_value(f"{form} [name='parameters']") == DETECTED


def test_a_notebook_runs_as_a_job_from_its_toolbar(page, lab):
    from jupyter_jobs.kernel.magics import JobMagics
    from jupyter_jobs.kernel.specs import parse_parameters

    write_notebook(lab.root / "proj" / "train.ipynb")
    browse_proj(page)
    page.dblclick(".jp-DirListing-item:has-text('train.ipynb')")
    page.click(".jp-NotebookPanel:visible .jp-Toolbar .jp-JobsRunNotebook:has-text('Run as Job')")
    check_prefilled_form(page)
    assert not serious_violations(page, "#jupyter-jobs-panel .jp-JobsForm")
    page.fill("#jupyter-jobs-panel [name='parameters']", DETECTED.replace("lr=0.1", "lr=0.01"))
    page.click("#jupyter-jobs-panel button[type=submit]")

    job_id = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible").get_attribute("data-job-id")
    spec = lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["spec"]
    assert spec["notebook"] == "train.ipynb" and spec["command"] is None and spec["workspace"] == "proj"
    assert spec["parameters"] == {"lr": 0.01, "epochs": 2, "label": "baseline", "layers": [64, 32],
                                  "augment": True, "seed": None, "eps": 1e-08}
    runs = page.inner_text(".jp-JobsView .jp-JobsRuns")
    assert "train.ipynb" in runs and "lr=0.01" in runs and 'label="baseline"' in runs

    # while it runs: a bar in its row of the sidebar and in its tab, short of the end
    view = f".jp-JobsView[data-job-id='{job_id}']"
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{job_id}'][data-status='running'] [role='progressbar']",
                           timeout=60_000)
    running = page.wait_for_selector(f"{view}[data-status='running'] [role='progressbar']", timeout=60_000)
    assert int(running.get_attribute("aria-valuenow")) < 100
    done = page.wait_for_selector(f"{view}[data-status='succeeded'] [role='progressbar']", timeout=120_000)
    page.wait_for_selector(f"{view} [role='progressbar'][aria-valuenow='100']")
    assert done.get_attribute("aria-valuetext") == "100%" and done.inner_text() == "100%"
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{job_id}'][data-status='succeeded']")
    assert page.locator(f".jp-JobsRow[data-job-id='{job_id}'] [role='progressbar']").count() == 0  # the badge says it
    assert not serious_violations(page, view)
    shot(page, "notebook-job")

    # the magic it copies runs the same notebook with the same parameters
    page.click(f"{view} button:has-text('Copy as magic')")
    page.wait_for_selector(f"{view} [role='status']:has-text('Copied as magic')")
    magic = page.evaluate("navigator.clipboard.readText()")
    words = shlex.split(magic)
    assert words[:2] == ["%job", "notebook"], magic
    args = JobMagics._parser(None).parse_args(words[1:])
    assert (args.path, args.workspace, args.name) == ("proj/train.ipynb", "proj", "train")
    assert parse_parameters(args.parameter) == spec["parameters"]

    page.click(f"{view} button:has-text('Open executed notebook')")
    copy = f"job-outputs/{job_id}/train.ipynb"
    page.wait_for_function(f"document.querySelector('.lm-DockPanel .lm-TabBar-tab.lm-mod-current')"
                           f"?.title.includes('{copy}')")
    injected = page.wait_for_selector(".jp-NotebookPanel:visible .jp-CodeCell:has-text('# Parameters')")
    assert "lr = 0.01" in injected.inner_text() and "lr = 0.1\n" not in injected.inner_text()
    executed = nbformat.read(lab.root / copy, as_version=4)
    cell = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "lr = 0.01" in cell.source and 'label = "baseline"' in cell.source
    assert executed.cells[-1].outputs[0]["text"] == "lr=0.01 label=baseline\n"


def test_the_file_browser_runs_a_notebook_as_a_job(page, lab):
    write_notebook(lab.root / "proj" / "train.ipynb")
    browse_proj(page)
    page.click(".jp-DirListing-item:has-text('train.ipynb')", button="right")
    page.click(".lm-Menu-item:has-text('Run as Job')")
    check_prefilled_form(page)
    before = len(lab.request("GET", "/jupyter-jobs/jobs")["jobs"])

    # a line the form cannot read is named beside the parameters, and nothing is submitted
    page.fill("#jupyter-jobs-panel [name='parameters']", "lr=0.01\n2x=1")
    page.click("#jupyter-jobs-panel button[type=submit]")
    error = page.wait_for_selector(".jp-JobsField[data-field='parameters'] .jp-JobsField-error")
    assert "line 2" in error.inner_text() and '"2x=1"' in error.inner_text()
    # the server's complaint about the notebook is shown beside it
    page.fill("#jupyter-jobs-panel [name='parameters']", "lr=0.01")
    page.fill("#jupyter-jobs-panel [name='notebook']", "missing.ipynb")
    page.click("#jupyter-jobs-panel button[type=submit]")
    error = page.wait_for_selector(".jp-JobsField[data-field='notebook'] .jp-JobsField-error")
    assert "missing.ipynb" in error.inner_text()
    assert page.locator(".jp-JobsField[data-field='parameters'] .jp-JobsField-error").count() == 0
    assert "1 field to fix" in page.inner_text("#jupyter-jobs-panel .jp-JobsError")
    assert len(lab.request("GET", "/jupyter-jobs/jobs")["jobs"]) == before

    # a command instead: the notebook's fields give way to the command's
    page.check("#jupyter-jobs-panel input[name='runs'][value='command']")
    page.fill("#jupyter-jobs-panel [name='command']", "echo plain")
    assert page.locator("#jupyter-jobs-panel [name='notebook']").count() == 0
    page.click("#jupyter-jobs-panel button[type=submit]")
    job_id = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible").get_attribute("data-job-id")
    spec = lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["spec"]
    assert spec["command"] == "echo plain" and spec["notebook"] is None and spec["parameters"] == {}
