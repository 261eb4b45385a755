"""Job kernels in a container (real Docker engine) and on a Slurm node (real daemons): a real
kernel client through the server's kernel manager proves where the kernel runs, that the
notebook's folder is live both ways, that interrupt, restart and a death from outside work, that
its ports are where they must be, and that its connection key is in no record, log or file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import pytest
from support import SLURM_CONF, docker_problem, log_text, require, slurm_problem
from test_job_kernels import execute, interrupts, live_both_ways, offered, start

DOCKER_KERNEL = {"gpu-docker": {"backend": "docker", "image": "jupyter-jobs/notebook:test", "gpus": 1}}


def _key(jp_serverapp, kernel_id: str) -> str:
    return jp_serverapp.kernel_manager.get_kernel(kernel_id).session.key.decode()


async def _kernel_job(api) -> dict:
    listed = (await api.call("GET", "jobs", params={"status": "running"}))["jobs"]
    (job,) = [j for j in listed if j["kind"] == "kernel"]
    return job


async def _key_kept(api, job: dict, key: str, workspace) -> None:
    """The connection key is in no reply, log or file of the notebook's folder, and not in the
    kernel's own environment; nor is any credential of the server."""
    assert key not in json.dumps(await api.call("GET", "jobs", job["id"]))
    assert key not in json.dumps(await api.logs(job["id"]))
    assert not any(key.encode() in p.read_bytes() for p in workspace.rglob("*") if p.is_file())


@pytest.mark.parametrize("jobs_config", [{"gpus": 1, "metrics_interval": 0, "kernels": DOCKER_KERNEL}])
@pytest.mark.parametrize("extra_config", [{"DockerBackend": {"gpu_request": "env"}}])
async def test_a_docker_gpu_kernel(jp_serverapp, api, workspace, docker_client):
    spec = await offered(jp_serverapp, "jupyter-jobs-gpu-docker")
    assert spec["spec"]["display_name"] == "Python 3 - 1 GPU (docker, notebook:test)"
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-gpu-docker", "proj")
    try:
        job = await _kernel_job(api)
        assert (job["backend"], job["gpus"], job["notebook_path"]) == ("docker", [0], None)
        (container,) = docker_client.containers.list(filters={"label": f"jupyter_jobs.job={job['id']}"})
        status, printed = await execute(client, "import os, socket\nprint(socket.gethostname(), "
                                        "os.environ['CUDA_VISIBLE_DEVICES'], os.getcwd(), sorted(k for k in "
                                        "os.environ if k.startswith(('JUPYTER_JOBS', 'JPY_API')) or 'TOKEN' in k))")
        assert status == "ok" and printed.split() == [container.id[:12], "0", "/workspace", "[]"], printed
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert len(bindings) == 5 and {b["HostIp"] for v in bindings.values() for b in v} == {"127.0.0.1"}
        assert job["endpoints"] == [], "a kernel's sockets are not endpoints"
        await live_both_ways(client, workspace)
        await interrupts(jp_serverapp, kernel_id, client)
        await _key_kept(api, job, _key(jp_serverapp, kernel_id), workspace)

        await jp_serverapp.kernel_manager.restart_kernel(kernel_id)  # a new job, the same notebook
        client.stop_channels()  # new ports: a client connects anew, as JupyterLab does after a restart
        client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        assert (await execute(client, "print(41 + 1)"))[1].strip() == "42"
        restarted = await _kernel_job(api)
        assert restarted["id"] != job["id"] and (await api.job(job["id"]))["status"] in ("succeeded", "cancelled")

        docker_client.containers.get(f"jupyter-job-{restarted['id']}").kill()  # from outside
        assert (await api.wait(restarted["id"], timeout=30))["status"] == "failed"
        deadline = time.monotonic() + 60
        while not [j for j in (await api.call("GET", "jobs", params={"status": "running"}))["jobs"]
                         if j["id"] != restarted["id"]]:
            assert time.monotonic() < deadline, "the kernel was not started again"
            await asyncio.sleep(0.2)
        await asyncio.wait_for(jp_serverapp.kernel_manager.get_kernel(kernel_id).ready, 60)
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)
    assert (await api.call("GET", "backends"))["gpus"][0]["in_use"] == 0, "its GPU is free again"
    assert not docker_client.containers.list(filters={"label": "jupyter_jobs.job"}), "no container left"


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0, "kernels": {
    "no-kernel": {"backend": "docker", "image": "jupyter-jobs/python:test"}}}])
async def test_an_image_without_ipykernel_fails_the_start_with_the_reason(jp_serverapp, api, workspace):
    require("docker", docker_problem())
    with pytest.raises(Exception, match=r"ended failed|died"):  # before or after its ports were published
        await start(jp_serverapp, "jupyter-jobs-no-kernel", "proj")
    job = (await api.call("GET", "jobs"))["jobs"][-1]  # the first try (the restarter may try again)
    assert (await api.wait(job["id"], timeout=30))["status"] == "failed"
    assert "has no ipykernel, so it cannot run a kernel" in log_text(await api.logs(job["id"]))


def _slurm_config(tmp_path) -> dict:
    return {"SlurmBackend": {"slurm_conf": SLURM_CONF, "shared_dir": str(tmp_path / "shared"), "poll_interval": 0.2}}


@pytest.fixture
def extra_config(tmp_path):
    return _slurm_config(tmp_path)


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0, "kernels": {"slurm": {"backend": "slurm"}}}])
async def test_a_slurm_kernel_runs_on_a_node(jp_serverapp, api, workspace):
    require("slurm", slurm_problem())
    spec = await offered(jp_serverapp, "jupyter-jobs-slurm")
    assert spec["spec"]["display_name"] == "Python 3 - slurm"
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-slurm", "proj")
    try:
        job = await _kernel_job(api)
        status, printed = await execute(client, "import os\nprint(os.environ['SLURM_JOB_ID'], os.environ["
                                        "'SLURMD_NODENAME'], os.path.realpath(os.getcwd()))")
        slurm_id, node, cwd = printed.split()
        assert status == "ok" and cwd == str(workspace.resolve()) and node in ("n1", "n2"), printed
        squeue = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True,
                                env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=30).stdout.strip()
        assert squeue == "RUNNING"
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        assert km.ip == "127.0.0.1", "the node's address (NodeAddr of this test cluster)"
        await live_both_ways(client, workspace)
        await interrupts(jp_serverapp, kernel_id, client)
        await _key_kept(api, job, _key(jp_serverapp, kernel_id), workspace)
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)
    gone = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=30).stdout.strip()
    assert gone in ("", "COMPLETING", "CANCELLED"), gone


def test_a_bad_kernel_configuration_is_refused_at_start_with_the_reason(tmp_path):
    from support import ServerProcess

    (tmp_path / "root").mkdir()
    config = tmp_path / "bad_kernels.py"
    config.write_text("c.JobsApp.kernels = {'gpu': {'backend': 'nowhere', 'gpus': 1}}\n")
    server = ServerProcess(tmp_path / "root", tmp_path / "data", extra=[f"--config={config}"]).start("/api/status")
    try:
        said = server.log_path.read_text()
        assert "c.JobsApp.kernels['gpu']: backend 'nowhere' is not one of this server's (local, docker" in said
        specs = server.request("GET", "/api/kernelspecs")["kernelspecs"]
        assert not [name for name in specs if name.startswith("jupyter-jobs-")], "nothing half-configured offered"
    finally:
        server.stop()


@pytest.mark.parametrize("given, words", [({"gpus": -1}, "resources.gpus"), ({"instance_type": "huge"},
                         "instance_type 'huge' is not configured"), ({"colour": "red"}, "unknown ['colour']")])
def test_each_kernel_field_is_checked(given, words):
    from jupyter_jobs.server.kernel_specs import KernelConfigError, check_configured

    with pytest.raises(KernelConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_configured({"x": given}, {"local": None}, set())
