"""The Jupyter server's own /metrics after real jobs ran (local backend, a configured 2-GPU
inventory on a pool of the test's own, NVML faked for utilization): jobs by status and
backend, outcomes by reason, the wait from submit to start, the GPUs held and how busy they
are; nothing of a job's command, name or env in a label; and /metrics behind Jupyter's login."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from test_metrics import FakeNVML


@pytest.fixture
def jobs_config():
    return {"gpus": 2, "metrics_interval": 0, "host_metrics_interval": 0.2}


@pytest.fixture
def fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())


async def scrape(jp_fetch) -> dict:
    resp = await jp_fetch("metrics", method="GET")
    samples = {}
    for family in text_string_to_metric_families(resp.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_metrics_after_real_jobs(fake_nvml, api, workspace, jp_fetch):
    secret = {"name": "very-private-name", "env": {"TOKEN": "s3cr3t-env-value"}, "workspace": "proj"}
    ok = await api.submit({**secret, "command": ["true"]})
    bad = await api.submit({**secret, "command": "echo hunter2-in-the-command; exit 3"})
    held = await api.submit({**secret, "command": ["sleep", "60"], "resources": {"gpus": 1}})
    assert (await api.wait(ok["id"]))["status"] == "succeeded"
    assert (await api.wait(bad["id"]))["status"] == "failed"
    device = (await api.wait(held["id"], {"running"}))["gpus"][0]
    deadline = time.monotonic() + 20
    while True:  # the collector's reads come every 0.2 s
        samples = await scrape(jp_fetch)
        if (value(samples, "jupyter_jobs_jobs", user="root", status="running", backend="local") == 1
                and value(samples, "jupyter_jobs_gpu_jobs", gpu=str(device)) == 1):
            break
        assert time.monotonic() < deadline, sorted(k for k in samples if k[0].startswith("jupyter_jobs"))
        await asyncio.sleep(0.2)
    assert value(samples, "jupyter_jobs_jobs", user="root", status="succeeded", backend="local") == 1
    assert value(samples, "jupyter_jobs_jobs", user="root", status="failed", backend="local") == 1
    assert value(samples, "jupyter_jobs_job_outcomes_total", user="root", status="failed", reason="exit_code",
                 backend="local") == 1
    assert value(samples, "jupyter_jobs_job_outcomes_total", user="root", status="succeeded", reason="",
                 backend="local") == 1
    assert value(samples, "jupyter_jobs_job_wait_seconds_count", user="root", backend="local") == 3
    assert value(samples, "jupyter_jobs_job_wait_seconds_bucket", user="root", backend="local", le="+Inf") == 3
    assert 0 < value(samples, "jupyter_jobs_job_wait_seconds_sum", user="root", backend="local") < 30
    assert value(samples, "jupyter_jobs_gpu_jobs", gpu=str(1 - device)) == 0
    assert value(samples, "jupyter_jobs_gpu_utilization_percent", gpu=str(device)) == 40 + device
    assert value(samples, "jupyter_jobs_gpu_memory_used_bytes", gpu="1") == 2 * 2**30
    assert value(samples, "jupyter_jobs_gpus_held", user="root") == 1
    assert value(samples, "jupyter_jobs_gpu_hours", user="root", window="day") > 0
    labels = " ".join(str(k[1]) for k in samples)
    for text in ("very-private-name", "s3cr3t-env-value", "hunter2", ok["id"], held["id"], "proj"):
        assert text not in labels
    await api.call("POST", "jobs", held["id"], "cancel")
    await api.wait(held["id"])
    await asyncio.sleep(0.5)
    samples = await scrape(jp_fetch)
    assert value(samples, "jupyter_jobs_job_outcomes_total", user="root", status="cancelled", reason="",
                 backend="local") == 1


async def test_metrics_need_a_login(api, jp_fetch, jp_http_port, jp_base_url):
    await api.call("GET", "jobs")  # the service has started
    client = AsyncHTTPClient()
    resp = await client.fetch(f"http://localhost:{jp_http_port}{jp_base_url}metrics", raise_error=False)
    assert resp.code == 403  # ServerApp.authenticate_prometheus (True by default)
    assert "jupyter_jobs" not in resp.body.decode()
    assert b"# TYPE jupyter_jobs_jobs gauge" in (await jp_fetch("metrics", method="GET")).body
