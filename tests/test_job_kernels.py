"""Job kernels (#28, first slice: the local backend): a real kernel started through the server's
kernel manager runs as a job of the service, holding a GPU of the configured inventory, in the
notebook's folder itself; interrupts and shut-down work and free the GPU."""

from __future__ import annotations

import asyncio
import time

import pytest

ONE_GPU = pytest.mark.parametrize("jobs_config", [{"gpus": 1, "metrics_interval": 0}])


async def execute(client, code: str) -> tuple[str, str]:
    """(status, what the cell printed)."""
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"])

    reply = await client.execute_interactive(code, output_hook=hook, timeout=60)
    return reply["content"]["status"], "".join(out)


async def offered(jp_serverapp, name: str) -> dict:
    """The kernel spec once the server offers it (written once it knows which backends answer)."""
    deadline = time.monotonic() + 30
    while (spec := jp_serverapp.kernel_spec_manager.get_all_specs().get(name)) is None:
        offered = sorted(jp_serverapp.kernel_spec_manager.get_all_specs())
        assert time.monotonic() < deadline, f"{name} never offered: {offered}"
        await asyncio.sleep(0.1)
    return spec


async def start(jp_serverapp, name: str, path: str):
    await offered(jp_serverapp, name)
    kernels = jp_serverapp.kernel_manager
    kernel_id = await kernels.start_kernel(kernel_name=name, path=path)
    client = kernels.get_kernel(kernel_id).client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return kernel_id, client


async def interrupts(jp_serverapp, kernel_id: str, client) -> None:
    """Interrupt of a sleep(100) ends it with KeyboardInterrupt within 10 s."""
    running = asyncio.ensure_future(execute(client, "import time\ntime.sleep(100)"))
    await asyncio.sleep(1)
    started = time.monotonic()
    await jp_serverapp.kernel_manager.interrupt_kernel(kernel_id)
    assert await running == ("error", "KeyboardInterrupt")
    assert time.monotonic() - started < 10


async def live_both_ways(client, workspace) -> None:
    """A file the kernel writes is in the folder, and one written beside it is read by the kernel."""
    await execute(client, "open('from_the_kernel.txt', 'w').write('written in the kernel')")
    assert (workspace / "from_the_kernel.txt").read_text() == "written in the kernel"
    (workspace / "from_the_notebook.txt").write_text("written beside it")
    assert (await execute(client, "print(open('from_the_notebook.txt').read())"))[1].strip() == "written beside it"


async def the_kernels_job(api) -> dict:
    listed = (await api.call("GET", "jobs"))["jobs"]
    (job,) = [j for j in listed if "kernel" in (j["spec"].get("tags") or [])]
    return await api.call("GET", "jobs", job["id"])


@ONE_GPU
async def test_a_gpu_kernel_is_a_job_in_the_notebooks_folder(jp_serverapp, api, workspace):
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-local-gpu", "proj")
    try:
        job = await the_kernels_job(api)
        assert (job["status"], job["backend"], job["gpus"]) == ("running", "local", [0])
        status, printed = await execute(client, "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'], "
                                                "os.path.realpath(os.getcwd()))")
        assert status == "ok" and printed.split() == ["0", str(workspace.resolve())]
        await live_both_ways(client, workspace)
        await interrupts(jp_serverapp, kernel_id, client)
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)
    done = await api.call("GET", "jobs", job["id"])
    assert done["status"] in ("succeeded", "cancelled"), done
    assert (await api.call("GET", "backends"))["gpus"][0]["in_use"] == 0, "its GPU is free again"


@ONE_GPU
async def test_a_second_gpu_kernel_waits_for_the_gpu_then_starts(jp_serverapp, api, workspace):
    first, client = await start(jp_serverapp, "jupyter-jobs-local-gpu", "proj")
    second = asyncio.ensure_future(start(jp_serverapp, "jupyter-jobs-local-gpu", "proj"))
    try:
        deadline = time.monotonic() + 30
        while len(queued := (await api.call("GET", "jobs", params={"status": "queued"}))["jobs"]) != 1:
            assert time.monotonic() < deadline, "the second kernel's job never queued"
            await asyncio.sleep(0.1)
        waiting = await api.call("GET", "jobs", queued[0]["id"])
        assert "GPU" in waiting["waiting"] and not second.done(), waiting
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(first)
        second_id, second_client = await asyncio.wait_for(second, 60)
        assert (await execute(second_client, "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])"))[1].strip() == "0"
        second_client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(second_id)
    finally:
        if not second.done():
            second.cancel()


def test_a_server_stop_leaves_no_kernel_job_running(tmp_path):
    """The server stops its kernels before it lets its jobs run on: a kernel job ends with it."""
    import signal
    import subprocess

    from support import ServerProcess

    (tmp_path / "root" / "proj").mkdir(parents=True)
    server = ServerProcess(tmp_path / "root", tmp_path / "data", extra=["--JobsApp.gpus=1",
                                                                        f"--JobsApp.gpu_pool_dir={tmp_path}/pool"])
    server.start()
    try:
        kernel = server.request("POST", "/api/kernels", {"name": "jupyter-jobs-local-gpu", "path": "proj"})
        deadline = time.monotonic() + 30
        while not (jobs := server.request("GET", "/jupyter-jobs/jobs?status=running")["jobs"]):
            assert time.monotonic() < deadline, "the kernel's job never ran"
            time.sleep(0.1)
        assert kernel["id"] in jobs[0]["name"]
        found = subprocess.run(["pgrep", "-f", f"kernel-{kernel['id']}"], capture_output=True, text=True).stdout
        assert found.strip(), "the kernel's process is found by its connection file"
    finally:
        server.stop(signal.SIGTERM)
        server.proc.wait(timeout=60)
    left = subprocess.run(["pgrep", "-f", f"kernel-{kernel['id']}"], capture_output=True, text=True).stdout
    assert not left.strip(), f"the kernel outlived its server: {left}"


@ONE_GPU
async def test_cancelling_a_waiting_kernels_job_ends_its_start_with_the_reason(jp_serverapp, api, workspace):
    first, client = await start(jp_serverapp, "jupyter-jobs-local-gpu", "proj")
    second = asyncio.ensure_future(start(jp_serverapp, "jupyter-jobs-local-gpu", "proj"))
    try:
        deadline = time.monotonic() + 30
        while not (queued := (await api.call("GET", "jobs", params={"status": "queued"}))["jobs"]):
            assert time.monotonic() < deadline, "the second kernel's job never queued"
            await asyncio.sleep(0.1)
        await api.call("POST", "jobs", queued[0]["id"], "cancel")
        with pytest.raises(Exception, match=f"the kernel's job {queued[0]['id']} ended cancelled"):
            await asyncio.wait_for(second, 30)
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(first)


@ONE_GPU
async def test_a_kernel_killed_from_outside_ends_its_job_and_restarts_as_a_new_one(jp_serverapp, api, workspace):
    import os
    import signal
    import subprocess

    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-local-gpu", "proj")
    try:
        job = await the_kernels_job(api)
        pids = subprocess.run(["pgrep", "-f", f"kernel-{kernel_id}"], capture_output=True, text=True).stdout.split()
        assert pids, "the kernel's process"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        ended = await api.wait(job["id"], timeout=30)
        assert ended["status"] == "failed", ended
        deadline = time.monotonic() + 60
        while not [j for j in (await api.call("GET", "jobs", params={"status": "running"}))["jobs"]
                   if j["id"] != job["id"]]:
            assert time.monotonic() < deadline, "the kernel was not started again as a new job"
            await asyncio.sleep(0.2)
        assert (await api.call("GET", "backends"))["gpus"][0]["in_use"] == 1, "the GPU went to the new one only"
        await asyncio.wait_for(jp_serverapp.kernel_manager.get_kernel(kernel_id).ready, 30)  # restarted
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)


@pytest.mark.parametrize("jobs_config", [{"gpus": 1, "metrics_interval": 0,
                                          "instance_types": {"gpu-small": {"gpus": 1, "cpus": 1.0}}}])
async def test_an_instance_type_is_a_kernel_named_after_it(jp_serverapp, api, workspace):
    specs = jp_serverapp.kernel_spec_manager.get_all_specs()  # what the launcher lists
    assert specs["jupyter-jobs-type-gpu-small"]["spec"]["display_name"] == "Python 3 - gpu-small"
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-type-gpu-small", "proj")
    try:
        job = await the_kernels_job(api)
        assert (job["gpus"], job["spec"]["instance_type"], job["spec"]["resources"]["cpus"]) == ([0], "gpu-small", 1.0)
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)



@ONE_GPU
async def test_job_magic_works_from_inside_a_job_kernel(jp_serverapp, api, workspace):
    """A job kernel finds its server's service as any kernel of it does: %%job sends a cell on."""
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-local", "proj")
    try:
        assert (await execute(client, "%load_ext jupyter_jobs"))[0] == "ok"
        status, printed = await execute(client, "%%job\nprint('sent on from a job kernel')")
        assert status == "ok" and "sent on from a job kernel" in printed, printed
        sent = [j for j in (await api.call("GET", "jobs"))["jobs"] if "kernel" not in (j["spec"].get("tags") or [])]
        assert len(sent) == 1 and sent[0]["status"] == "succeeded", "it ran as a job of this server's service"
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)


@pytest.mark.parametrize("jobs_config", [{"gpus": 1, "metrics_interval": 0}])
@pytest.mark.parametrize("extra_config", [{"MappingKernelManager": {"cull_idle_timeout": 2, "cull_interval": 1}}])
async def test_an_idle_kernel_culled_by_the_server_ends_its_job_and_frees_its_gpu(jp_serverapp, api, workspace):
    kernel_id, client = await start(jp_serverapp, "jupyter-jobs-local-gpu", "proj")
    client.stop_channels()  # nobody connected, nothing running: the server's culler takes it
    job = await the_kernels_job(api)
    ended = await api.wait(job["id"], timeout=60)
    assert ended["status"] in ("succeeded", "cancelled"), ended
    deadline = time.monotonic() + 30
    while kernel_id in jp_serverapp.kernel_manager.list_kernel_ids():  # its shut-down ends the job first
        assert time.monotonic() < deadline, "never culled"
        await asyncio.sleep(0.1)
    assert (await api.call("GET", "backends"))["gpus"][0]["in_use"] == 0, "its GPU is free again"


async def test_a_kernel_job_is_listed_as_the_kernel_of_its_notebook_and_not_run_again(jp_serverapp, api, workspace):
    kernels = jp_serverapp.kernel_manager
    await offered(jp_serverapp, "jupyter-jobs-local")
    kernel_id = await kernels.start_kernel(kernel_name="jupyter-jobs-local", path="proj",
                                           env={"JPY_SESSION_NAME": "proj/train.ipynb"})
    try:
        job = await the_kernels_job(api)
        assert (job["kind"], job["notebook_path"], job["name"]) == ("kernel", "proj/train.ipynb",
                                                                    "kernel: proj/train.ipynb")
        assert job["origin"] == f"notebook-kernel:{kernel_id}" and job["spec"]["live"] is True
        listed = (await api.call("GET", "jobs", params={"tag": "kernel", "status": "running"}))["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
        refused = await api.call("POST", "jobs", job["id"], "rerun", expect=409)
        assert "kernel of proj/train.ipynb: it is not run again" in refused["message"]
    finally:
        await kernels.shutdown_kernel(kernel_id)
