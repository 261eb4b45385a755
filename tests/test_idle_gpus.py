"""Idle GPUs given back: real jobs on a configured 2-GPU inventory, NVML faked only for the
utilization it reports (no NVIDIA GPU exists here; the fake has pynvml's interface, as in
test_metrics). The policy stops, or warns and then stops, a job whose GPUs sat idle, and
leaves a busy one alone."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from test_metrics import FakeNVML

IDLE = {"min_util": 10, "window_minutes": 0.02}  # under 10% for 1.2 s


class UtilNVML(FakeNVML):
    """Reports `util[index]` percent for each device (a test changes it as it goes)."""

    def __init__(self):
        super().__init__()
        self.util = {0: 0, 1: 0}

    def nvmlDeviceGetUtilizationRates(self, handle):
        import types

        return types.SimpleNamespace(gpu=self.util[handle], memory=0)


@pytest.fixture
def nvml(monkeypatch):
    fake = UtilNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


async def running(api, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while (job := await api.call("GET", "jobs", job_id))["status"] != "running":
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)
    return job


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0.2, "gpus": 2, "gpu_pool_dir": "",
                                          "gpu_policy": {"default": {"idle": IDLE}}}])
async def test_a_job_whose_gpus_sit_idle_is_stopped_and_a_busy_one_is_not(nvml, api, workspace):
    nvml.util = {0: 0, 1: 85}
    idle = await running(api, (await api.submit({"command": ["sleep", "60"], "workspace": "proj",
                                                 "resources": {"gpus": 1}}))["id"])
    busy = await running(api, (await api.submit({"command": ["sleep", "60"], "workspace": "proj",
                                                 "resources": {"gpus": 1}}))["id"])
    assert (idle["gpus"], busy["gpus"]) == ([0], [1])
    done = await api.wait(idle["id"], timeout=30)
    assert (done["status"], done["reason"]) == ("failed", "idle")
    assert done["message"] == "stopped: its GPUs sat idle (under 10% for 1.2 s), given back to the host"
    assert (await api.call("GET", "jobs", busy["id"]))["status"] == "running", "its GPU is in use"
    await api.call("POST", "jobs", busy["id"], "cancel")


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0.2, "gpus": 2, "gpu_pool_dir": "", "gpu_policy": {
    "default": {"idle": {**IDLE, "action": "warn", "grace_minutes": 0.1}}}}])
async def test_warned_first_and_kept_if_its_gpus_are_used_again(nvml, api, workspace):
    nvml.util = {0: 0, 1: 0}
    woke = await running(api, (await api.submit({"command": ["sleep", "60"], "workspace": "proj",
                                                 "resources": {"gpus": 1}}))["id"])
    dozed = await running(api, (await api.submit({"command": ["sleep", "60"], "workspace": "proj",
                                                  "resources": {"gpus": 1}}))["id"])
    deadline = time.monotonic() + 30
    while not any(n.startswith("idle GPUs: they sat") for n in (await api.call("GET", "jobs", woke["id"]))["notes"]):
        assert time.monotonic() < deadline, "no warning came"
        await asyncio.sleep(0.05)
    nvml.util[woke["gpus"][0]] = 90  # the warned job uses its GPU again
    done = await api.wait(dozed["id"], timeout=30)
    assert (done["status"], done["reason"]) == ("failed", "idle")
    assert "idle GPUs: they sat under 10% for 1.2 s; it stops in 6 s unless they are used" in done["notes"]
    kept = await api.call("GET", "jobs", woke["id"])
    assert kept["status"] == "running" and "idle GPUs: in use again, it keeps them" in kept["notes"]
    await api.call("POST", "jobs", woke["id"], "cancel")
