"""Metrics: the lines a job writes to $JOB_METRICS_FILE and the telemetry the service samples
(CPU and memory through the backend, GPUs through NVML), served as series over REST, with
follow and resume, and summarised on the job. Real processes and a real server; the NVML
below is a fake (no NVIDIA GPU exists here) behind the same module interface as pynvml."""

from __future__ import annotations

import asyncio
import json
import time
import sys
import types

import pytest

WRITER = """
import json, os
path = os.environ['JOB_METRICS_FILE']
with open(path, 'a') as fh:
    for i in range(1000):
        fh.write(json.dumps({'step': i, 'loss': 1 / (i + 1), 'acc': i / 1000}) + '\\n')
        if i % 250 == 0:
            fh.write('not json\\n')
            fh.write('[1, 2]\\n')
    fh.write('{"phase": "done"}\\n')
    fh.write('{"final": 7, "time": 1700000000.5}')   # no newline: read once the job ended
"""
BURN = """
import time
hold = bytearray(200 * 1024 * 1024)
for i in range(0, len(hold), 4096):
    hold[i] = 1
end = time.time() + {seconds}
while time.time() < end:
    pass
"""


@pytest.fixture
def jobs_config():
    return {"metrics_interval": 0.5}


def py(code: str) -> list[str]:
    return ["python", "-c", code]


async def follow(api, job_id, since=None, names=None):
    params = {"follow": "true", **({"since": since} if since else {}), **({"names": names} if names else {})}
    resp = await api.call("GET", "jobs", job_id, "metrics", params=params)
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in resp.body.decode().splitlines()]


def merged(pages):
    out: dict[str, dict[str, list]] = {}
    for page in pages:
        for name, series in page.get("series", {}).items():
            into = out.setdefault(name, {"steps": [], "values": [], "times": []})
            into["steps"] += series["steps"]
            into["values"] += series["values"]
            into["times"] += series["times"] or [None] * len(series["steps"])
    return out


async def test_a_thousand_lines_are_served_in_order_with_bad_lines_counted(api, workspace):
    job = await api.submit({"command": py(WRITER), "workspace": "proj"})
    done = await api.wait(job["id"])
    assert done["status"] == "succeeded"
    page = await api.call("GET", "jobs", job["id"], "metrics")
    series = page["series"]
    assert series["loss"]["steps"] == list(range(1000))
    assert series["loss"]["values"] == [1 / (i + 1) for i in range(1000)]
    assert series["acc"]["values"][-1] == 0.999
    assert series["final"] == {"steps": [1009], "values": [7], "times": [1700000000.5]}  # placed at its line
    assert page["bad_lines"] == 9  # 4 x 'not json', 4 x a list, 1 with no number
    assert series["loss"]["times"] is None  # no line of loss had a time
    followed = await follow(api, job["id"])
    assert followed[-1]["status"] == "succeeded"
    assert merged(followed[:-1]) == merged([page])
    summary = done["metrics"] if done.get("metrics") else (await api.job(job["id"]))["metrics"]
    assert summary["series"]["loss"] == {"last": 0.001, "step": 999, "min": 0.001, "max": 1.0, "count": 1000}
    assert summary["bad_lines"] == 9
    only = await api.call("GET", "jobs", job["id"], "metrics", params={"names": "acc"})
    assert set(only["series"]) == {"acc"}


async def test_a_follower_gets_points_live_and_resumes(api, workspace):
    code = ("import time\nfrom jupyter_jobs import metrics\n"
            "for i in range(6):\n    metrics.log(step=i, loss=10 - i)\n    time.sleep(0.3)\n")
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait(job["id"], {"running"})
    first = await api.call("GET", "jobs", job["id"], "metrics", params={"names": "loss"})
    assert len(first["series"].get("loss", {"steps": []})["steps"]) < 6  # while it runs
    rest = await follow(api, job["id"], since=first["next"], names="loss")
    steps = first["series"].get("loss", {"steps": []})["steps"] + merged(rest[:-1])["loss"]["steps"]
    assert steps == list(range(6))  # nothing lost, nothing twice
    assert rest[-1]["status"] == "succeeded"
    times = merged(rest[:-1])["loss"]["times"]
    assert all(isinstance(t, float) for t in times)  # the helper stamps each line


async def test_bad_queries_name_the_field(api, workspace):
    job = await api.submit({"command": ["true"], "workspace": "proj"})
    for params, field in [({"since": "bogus"}, "since"), ({"since": "1.-2.3"}, "since"),
                          ({"since": f"{2**64}.0.0"}, "since"), ({"names": "x" * 201}, "names")]:
        reply = await api.call("GET", "jobs", job["id"], "metrics", params=params, expect=400)
        assert field in reply["errors"][0]["field"], reply
    await api.call("GET", "jobs", "nope", "metrics", expect=404)


async def test_a_metrics_file_that_is_a_link_or_a_pipe_is_not_read(api, workspace):
    code = ("import os\np = os.environ['JOB_METRICS_FILE']\n"
            "os.symlink('/etc/passwd', p)\n")
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait(job["id"])
    assert (await api.call("GET", "jobs", job["id"], "metrics"))["series"] == {}
    code = "import os\nos.mkfifo(os.environ['JOB_METRICS_FILE'])\n"
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait(job["id"])
    assert (await api.call("GET", "jobs", job["id"], "metrics"))["series"] == {}  # and no hang


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "process-tree"])
async def test_cpu_and_memory_telemetry_of_a_local_job(api, workspace, cgroups, jp_serverapp):
    backend = jp_serverapp.web_app.settings["jupyter_jobs_service"].backends["local"]
    backend.cgroups = cgroups
    job = await api.submit({"command": py(BURN.format(seconds=4)), "workspace": "proj"})
    assert (await api.wait(job["id"], timeout=60))["status"] == "succeeded"
    series = (await api.call("GET", "jobs", job["id"], "metrics"))["series"]
    assert max(series["cpu.percent"]["values"]) > 50
    assert max(series["memory.rss"]["values"]) > 150 * 2**20
    assert series["cpu.percent"]["times"][0] > 1.7e9  # wall-clock stamps


class FakeNVML(types.ModuleType):
    """pynvml's functions the telemetry calls, for two made-up devices."""

    def __init__(self):
        super().__init__("pynvml")
        self.calls = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUtilizationRates(self, handle):
        self.calls += 1
        return types.SimpleNamespace(gpu=40 + handle, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=(handle + 1) * 2**30, total=16 * 2**30, free=0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 150_000

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 61


@pytest.fixture
def fake_nvml(monkeypatch):
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0.5, "gpus": 2}])  # a configured inventory
async def test_gpu_telemetry_for_the_devices_a_job_holds(fake_nvml, api, workspace):
    hold = await api.submit({"command": ["sleep", "3"], "workspace": "proj", "resources": {"gpus": 1}})
    job = await api.submit({"command": ["sleep", "2"], "workspace": "proj", "resources": {"gpus": 1}})
    done = await api.wait(job["id"], timeout=30)
    index = done["gpus"][0]
    series = (await api.call("GET", "jobs", job["id"], "metrics"))["series"]
    assert set(series[f"gpu.{index}.util"]["values"]) == {40 + index}
    assert series[f"gpu.{index}.memory_total"]["values"][0] == 16 * 2**30
    assert series[f"gpu.{index}.power"]["values"][0] == 150.0
    assert not any(name.startswith(f"gpu.{1 - index}.") for name in series)  # only its own device
    await api.wait(hold["id"], timeout=30)


async def test_a_backend_that_cannot_tell_says_so_once(api, workspace, monkeypatch):
    """Telemetry never fails a job: a backend with no figures leaves one note on it."""
    from jupyter_jobs.backends.base import Usage
    from jupyter_jobs.backends.local import LocalExecution

    monkeypatch.setattr(LocalExecution, "usage", lambda self: Usage(note="no figures here"))
    job = await api.submit({"command": ["sleep", "2"], "workspace": "proj"})
    done = await api.wait(job["id"], timeout=30)
    assert done["status"] == "succeeded"
    assert [n for n in done["notes"] if n.startswith("telemetry")] == ["telemetry: no figures here"]


async def test_progress_shows_in_the_list_while_a_job_runs(api, workspace):
    code = ('import json, os, time\nwith open(os.environ["JOB_METRICS_FILE"], "a") as f:\n'
            '    f.write(json.dumps({"progress": 25}) + "\\n")\ntime.sleep(30)\n')
    job = await api.submit({"command": ["python3", "-c", code], "workspace": "proj"})
    deadline = time.monotonic() + 20
    while (listed := (await api.call("GET", "jobs"))["jobs"][0])["progress"] is None:
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.1)
    assert listed["id"] == job["id"] and listed["status"] == "running" and listed["progress"] == 0.25
    await api.call("POST", "jobs", job["id"], "cancel")
