"""The GPU host view in a real browser against a real JupyterLab: opened from the sidebar, it
shows each GPU with its holder and its utilization (NVML faked: no GPU here), the jobs waiting
for GPUs with the rule that holds each, GPU use per user; it follows the host live, opens a
job from its id, and axe finds no serious accessibility problem in it."""

from __future__ import annotations

import pytest
from conftest import open_panel, serious_violations, shot

FAKE_NVML = """
import types
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetHandleByIndex(index): return index
def nvmlDeviceGetUtilizationRates(handle): return types.SimpleNamespace(gpu=40 + handle, memory=10)
def nvmlDeviceGetMemoryInfo(handle): return types.SimpleNamespace(used=2**30, total=16 * 2**30, free=0)
"""


@pytest.fixture
def lab_extra(tmp_path, monkeypatch):
    fake = tmp_path / "fake-nvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    monkeypatch.setenv("PYTHONPATH", str(fake))  # the lab's server imports this pynvml
    return ["--JobsApp.gpus=2", f"--JobsApp.gpu_pool_dir={tmp_path / 'pool'}", "--JobsApp.metrics_interval=0",
            "--LocalBackend.max_running=10"]


def gpu_job(lab, seconds):
    return lab.request("POST", "/jupyter-jobs/jobs", {"command": f"sleep {seconds}", "workspace": "proj",
                                                      "resources": {"gpus": 1}, "name": "train"})


def test_the_host_view_shows_holders_utilization_queue_and_use(page, lab):
    held = [gpu_job(lab, 120) for _ in range(2)]
    for job in held:
        lab.wait(job["id"], {"running"})
    waiting = gpu_job(lab, 120)
    open_panel(page)
    page.click("#jupyter-jobs-panel button:has-text('GPUs')")
    view = page.wait_for_selector(".jp-JobsHost", state="visible")
    page.wait_for_selector(".jp-JobsHost [aria-label='Jobs waiting for GPUs'] tbody tr")
    rows = {i: page.inner_text(f".jp-JobsHost tr[data-gpu='{i}']") for i in (0, 1)}
    assert all("root" in text for text in rows.values())
    assert all(any(job["id"] in text for text in rows.values()) for job in held)
    assert "40%" in rows[0] and "41%" in rows[1]
    queue = page.inner_text(".jp-JobsHost [aria-label='Jobs waiting for GPUs'] tbody")
    assert waiting["id"] in queue and "#1 for a GPU" in queue
    assert "root" in page.inner_text(".jp-JobsHost [aria-label='GPU use by user'] tbody")
    assert "host admin" in view.inner_text()
    shot(page, "host-view")
    assert serious_violations(page, ".jp-JobsHost") == []
    # live: a device freed, the waiting job takes it and leaves the queue
    lab.request("POST", f"/jupyter-jobs/jobs/{held[0]['id']}/cancel", {})
    page.wait_for_selector(".jp-JobsHost p:has-text('No job waits for a GPU.')", timeout=30_000)
    page.wait_for_selector(f".jp-JobsHost tr[data-gpu] button:has-text('{waiting['id']}')", timeout=30_000)
    page.click(f".jp-JobsHost tr[data-gpu] button:has-text('{held[1]['id']}')")  # an id opens its job
    page.wait_for_selector(f".jp-JobsView[data-job-id='{held[1]['id']}']", state="visible")
    for job in (held[1], waiting):
        lab.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel", {})
