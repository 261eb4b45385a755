"""Job kernels in a real browser against a real JupyterLab (one GPU in the inventory): a notebook
whose kernel waits for the GPU another job holds says so in its toolbar, with the queue's reason
and a Cancel button that cancels the kernel's job (JupyterLab then says the start failed); once
the GPU is free and the kernel starts again, the toolbar says where it runs and opens its job,
whose tab says whose kernel it is; the Jobs page and the sidebar show it as a kernel with its
notebook. A notebook with an ordinary kernel shows nothing and asks the job service nothing."""

from __future__ import annotations

import time

import nbformat
import pytest
from conftest import open_panel, serious_violations, shot

KERNEL = "jupyter-jobs-local-gpu"
NOTEBOOK = "proj/gpu.ipynb"
ITEM = ".jp-NotebookPanel:visible .jp-JobsKernelItem"


@pytest.fixture
def lab_extra(tmp_path):
    return ["--JobsApp.gpus=1", f"--JobsApp.gpu_pool_dir={tmp_path / 'pool'}", "--JobsApp.metrics_interval=0",
            "--LocalBackend.max_running=10"]


def write_notebook(lab) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 - 1 GPU on this host", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ.get('CUDA_VISIBLE_DEVICES'))")]
    nbformat.write(nb, lab.root / NOTEBOOK)


def kernel_jobs(lab, status: str) -> list[dict]:
    return lab.request("GET", f"/jupyter-jobs/jobs?tag=kernel&status={status}")["jobs"]


def until(what, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)
    return found


def open_notebook(page) -> None:
    if not page.is_visible(".jp-DirListing"):
        page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.dblclick(".jp-DirListing-item:has-text('gpu.ipynb')")
    page.wait_for_selector(".jp-NotebookPanel:visible")


def test_a_kernel_waiting_for_the_gpu_says_why_can_be_cancelled_then_says_where_it_runs(page, lab):
    assert KERNEL in lab.request("GET", "/api/kernelspecs")["kernelspecs"]
    holder = lab.request("POST", "/jupyter-jobs/jobs", {"command": "sleep 60", "workspace": "proj",
                                                        "resources": {"gpus": 1}, "name": "holds the GPU"})
    lab.wait(holder["id"], {"running"})
    write_notebook(lab)
    open_notebook(page)

    # the kernel's job queues behind the GPU's holder: the toolbar says why, as the queue does
    waiting = page.wait_for_selector(f"{ITEM} [data-state='waiting']", timeout=30_000)
    (queued,) = until(lambda: kernel_jobs(lab, "queued"))
    assert (queued["kind"], queued["status"]) == ("kernel", "queued")
    assert queued["notebook_path"].endswith(NOTEBOOK)
    assert waiting.get_attribute("data-job-id") == queued["id"]
    text = page.inner_text(f"{ITEM} .jp-JobsKernelItem-text")
    assert text.startswith("Kernel waiting: ") and "GPU" in text and "#1 in the queue" in text, text
    assert text == f"Kernel waiting: {lab.request('GET', '/jupyter-jobs/jobs/' + queued['id'])['waiting']}"
    shot(page, "kernel-waiting")
    assert serious_violations(page, ".jp-JobsKernelItem") == []

    # Cancel: the kernel's job is cancelled, and JupyterLab says the kernel did not start
    page.click(f"{ITEM} button:has-text('Cancel')")
    dialog = page.wait_for_selector(".jp-Dialog:has-text('Error Starting Kernel')", timeout=30_000)
    assert queued["id"] in dialog.inner_text() and "cancelled" in dialog.inner_text()
    assert lab.request("GET", f"/jupyter-jobs/jobs/{queued['id']}")["status"] == "cancelled"
    assert lab.request("GET", f"/jupyter-jobs/jobs/{holder['id']}")["status"] == "running"
    page.click(".jp-Dialog button:has-text('Ok')")
    page.wait_for_selector(ITEM, state="hidden")

    # the GPU freed, the kernel started again (JupyterLab asks which): the toolbar says where it runs
    lab.request("POST", f"/jupyter-jobs/jobs/{holder['id']}/cancel", {})
    lab.wait(holder["id"])
    page.wait_for_selector(".jp-Dialog:has-text('Select Kernel')")
    select = page.locator(".jp-Dialog select")
    select.select_option(label="Python 3 - 1 GPU on this host")
    page.click(".jp-Dialog button:has-text('Select')")
    running = page.wait_for_selector(f"{ITEM} [data-state='running']", timeout=60_000)
    (kernel_job,) = until(lambda: kernel_jobs(lab, "running"))
    assert kernel_job["gpus"] == [0] and kernel_job["kind"] == "kernel"
    assert running.get_attribute("data-job-id") == kernel_job["id"]
    assert page.inner_text(f"{ITEM} .jp-JobsKernelItem-job") == f"GPU 0 · job {kernel_job['id']}"
    assert kernel_job["id"] != queued["id"]
    shot(page, "kernel-running")
    # found: the notebook reads the kernel jobs no more
    reads: list[str] = []
    page.on("request", lambda request: reads.append(request.url) if "tag=kernel" in request.url else None)
    page.wait_for_timeout(3000)
    assert reads == []

    # it opens the kernel's job: a kernel of this notebook, no Rerun nor Schedule for it
    page.click(f"{ITEM} .jp-JobsKernelItem-job")
    view = page.wait_for_selector(f".jp-JobsView[data-job-id='{kernel_job['id']}']", state="visible")
    assert view.query_selector(".jp-JobsTitle").inner_text().startswith(f"Kernel of {NOTEBOOK}")
    buttons = page.locator(f".jp-JobsView[data-job-id='{kernel_job['id']}'] [aria-label='job actions'] button")
    labels = buttons.all_inner_texts()
    assert "Cancel" in labels and not {"Rerun", "Schedule this", "Copy as job file"} & set(labels), labels
    shot(page, "kernel-job-tab")
    page.click(f".jp-JobsView[data-job-id='{kernel_job['id']}'] .jp-JobsKernelOf-open")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{kernel_job['id']}']", state="hidden")  # the notebook, in front
    assert page.is_visible(".jp-NotebookPanel") and page.is_visible(f"{ITEM} [data-state='running']")

    # the Jobs page: both kernel jobs as kernels of the notebook, the GPU holder as a job
    open_panel(page)
    page.click("#jupyter-jobs-panel button:has-text('Open all')")
    page.wait_for_selector(".jp-JobsPage", state="visible")
    row = page.wait_for_selector(f".jp-JobsGrid-row[data-job-id='{kernel_job['id']}']")
    assert row.query_selector(".jp-JobsKind").inner_text() == "kernel"
    assert row.query_selector(".jp-JobsNotebookLink").inner_text() == NOTEBOOK
    assert row.query_selector(".jp-JobsGrid-gpus").inner_text() == "1"
    cancelled = page.wait_for_selector(f".jp-JobsGrid-row[data-job-id='{queued['id']}'][data-status='cancelled']")
    assert cancelled.query_selector(".jp-JobsKind") is not None
    assert page.query_selector(f".jp-JobsGrid-row[data-job-id='{holder['id']}'] .jp-JobsKind") is None
    shot(page, "kernel-jobs-page")
    # its notebook path opens the notebook, not the job
    page.click(f".jp-JobsGrid-row[data-job-id='{kernel_job['id']}'] .jp-JobsNotebookLink")
    page.wait_for_selector(".jp-NotebookPanel:visible")
    # the sidebar's list too
    open_panel(page)
    sidebar_row = page.wait_for_selector(f".jp-JobsRow[data-job-id='{kernel_job['id']}']")
    assert sidebar_row.query_selector(".jp-JobsKind").inner_text() == "kernel"
    assert sidebar_row.query_selector(".jp-JobsNotebookLink").inner_text() == NOTEBOOK
    assert serious_violations(page, "#jupyter-jobs-panel") == []

    # an ordinary kernel: nothing in the toolbar, and nothing asked of the job service for it
    plain = nbformat.v4.new_notebook()
    plain.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(plain, lab.root / "proj" / "plain.ipynb")
    reads.clear()
    page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item:has-text('plain.ipynb')")
    until(lambda: any(s["path"].endswith("plain.ipynb") and s["kernel"]["execution_state"] == "idle"
                      for s in lab.request("GET", "/api/sessions")))
    page.wait_for_timeout(2000)
    item = page.locator(".jp-NotebookPanel:visible .jp-JobsKernelItem")
    assert item.count() == 1 and item.is_hidden()
    assert reads == []
