"""GPU allocation through the local backend's CUDA_VISIBLE_DEVICES.

No NVIDIA GPU exists on the test machines: the inventory is configured (`c.JobsApp.gpus = 2`),
which is the same interface the NVML discovery fills. Allocation, queueing and freeing are real.
"""

from __future__ import annotations

import ctypes.util

import pytest

from jupyter_jobs.jobs.gpus import GPU, GPUAllocator, discover
from support import log_text

WAIT_FOR_FILE = "while [ ! -e \"$JOB_STORAGE_DIR/go\" ]; do sleep 0.05; done; echo \"gpus=$CUDA_VISIBLE_DEVICES\""


@pytest.fixture
def jobs_config():
    return {"gpus": 2}


async def test_jobs_get_distinct_gpus_and_wait_for_free_ones(api, workspace, jobs_data):
    reply = await api.call("GET", "backends")
    assert [g["index"] for g in reply["gpus"]] == [0, 1]
    first = await api.submit({"command": WAIT_FOR_FILE, "workspace": "proj", "resources": {"gpus": 1}})
    second = await api.submit({"command": WAIT_FOR_FILE, "workspace": "proj", "resources": {"gpus": 1}})
    third = await api.submit({"command": WAIT_FOR_FILE, "workspace": "proj", "resources": {"gpus": 2}})
    none = await api.submit({"command": "echo \"gpus=$CUDA_VISIBLE_DEVICES\"", "workspace": "proj"})
    a = await api.wait(first["id"], {"running"})
    b = await api.wait(second["id"], {"running"})
    assert sorted(a["gpus"] + b["gpus"]) == [0, 1]
    assert (await api.job(third["id"]))["status"] == "queued"  # both devices are taken
    assert log_text(await api.logs(none["id"], follow=True)) == "gpus=\n"  # no GPU asked, none visible
    in_use = {g["index"]: g["in_use"] for g in (await api.call("GET", "backends"))["gpus"]}
    assert in_use == {0: 1, 1: 1}
    storage = jobs_data / "storage"
    (storage / "go").write_text("")
    for job, gpus in ((first, a["gpus"]), (second, b["gpus"])):
        assert log_text(await api.logs(job["id"], follow=True)) == f"gpus={gpus[0]}\n"
    assert log_text(await api.logs(third["id"], follow=True)) == "gpus=0,1\n"
    done = await api.job(third["id"])
    assert done["status"] == "succeeded" and done["gpus"] == [0, 1]


async def test_more_gpus_than_the_host_has_is_a_400(api, workspace):
    reply = await api.submit({"command": "true", "workspace": "proj", "resources": {"gpus": 3}}, expect=400)
    assert reply["errors"] == [{"field": "resources.gpus", "message": "asks for 3 GPU(s) but this host has 2"}]


def test_allocator_shares_only_when_allowed():
    gpus = [GPU(i, "fake") for i in range(3)]
    alloc = GPUAllocator(gpus)
    assert alloc.allocate(2) == [0, 1] and alloc.allocate(2) is None and alloc.allocate(1) == [2]
    alloc.release([0, 1])
    assert alloc.free() == 2 and alloc.allocate(2) == [0, 1]
    shared = GPUAllocator(gpus[:1], share=2)
    assert shared.allocate(1) == [0] and shared.allocate(1) == [0] and shared.allocate(1) is None


def test_discovery_matches_the_driver():
    gpus = discover()
    if ctypes.util.find_library("nvidia-ml") is None:
        assert gpus == []  # no driver: an empty inventory, not an error
    else:
        assert gpus and [g.index for g in gpus] == list(range(len(gpus))) and all(g.memory for g in gpus)
