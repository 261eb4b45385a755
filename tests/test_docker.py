"""The docker backend against a real Docker engine (`bash scripts/docker-engine` starts one and
builds the test images offline). GPUs are configured fakes: no NVIDIA device exists here.

Tests marked `both_engines` run twice: on the Docker engine, and on the podman backend with a
real non-root user's rootless Podman, through that user's own Jupyter server (tests/rootless.py;
the podman backend's own tests are in test_podman.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time

import docker.errors
import pytest

from conftest import Api
from support import log_text

BUSYBOX = "jupyter-jobs/busybox:test"
PYTHON = "jupyter-jobs/python:test"


#: run a test on the docker backend and on the podman backend (a real user's rootless Podman)
both_engines = pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)


@pytest.fixture
def engine(request) -> str:
    """The backend under test: docker, unless a test is marked `both_engines`."""
    return getattr(request, "param", "docker")


@pytest.fixture
def podman_server(request):
    """alice's own Jupyter server, on her rootless Podman."""
    return request.getfixturevalue("user_servers")(request.getfixturevalue("alice"))


@pytest.fixture
def api(engine, request) -> Api:
    if engine == "docker":
        return Api(request.getfixturevalue("jp_fetch"))
    return Api(request.getfixturevalue("podman_server").fetch)


@pytest.fixture
def workspace(engine, request, workspace):
    """conftest's project folder; for podman, the same in the user's server's root, hers."""
    if engine == "docker":
        return workspace
    folder = request.getfixturevalue("alice").folder(request.getfixturevalue("podman_server").root / "proj")
    shutil.copy2(workspace / "hello.py", folder / "hello.py")
    return folder


@pytest.fixture
def engine_client(engine, request):
    """A Docker SDK client of the engine under test (for podman: the user's own, through the
    socket the user's server uses, as root)."""
    if engine == "docker":
        return request.getfixturevalue("docker_client")
    # (the API version named: no call now, as the engine starts with the server's first job)
    return docker.DockerClient(base_url=f"unix://{request.getfixturevalue('alice').socket}", version="1.41",
                               timeout=60)


@pytest.fixture
def spec(engine):
    """A spec for the backend under test (the busybox image, the `proj` workspace)."""
    return lambda **spec: {"backend": engine, "image": BUSYBOX, "workspace": "proj", **spec}


@pytest.fixture(autouse=True)
def _engine(engine, request):
    if engine != "docker":
        yield  # the user's containers go with the user's server (rootless.user_servers)
        return
    docker_client = request.getfixturevalue("docker_client")  # skips where there is no engine
    yield
    # only what a test left running; finished ones are checked by tests (the low-level list does
    # not inspect each container, which races one being removed meanwhile)
    for c in docker_client.api.containers(filters={"label": "jupyter_jobs.job", "status": "running"}):
        try:
            docker_client.api.remove_container(c["Id"], force=True)
        except docker.errors.NotFound:
            pass


def containers(client, job_id):
    return client.containers.list(all=True, filters={"label": f"jupyter_jobs.job={job_id}"})


def docker_job(**spec):
    return {"backend": "docker", "image": BUSYBOX, "workspace": "proj", **spec}


async def test_backend_is_listed_with_the_engine(api):
    backends = {b["name"]: b for b in (await api.call("GET", "backends"))["backends"]}
    docker = backends["docker"]
    assert docker["available"] and docker["details"]["engine"] and docker["capabilities"]["containers"]
    assert docker["details"]["nvidia"] is False


@both_engines
async def test_job_reads_workspace_and_writes_artifacts(api, workspace, engine_client, spec):
    (workspace / "data.txt").write_text("from the workspace\n")
    code = (
        "import os\nprint(open('data.txt').read().strip(), os.getcwd(), os.environ['JOB_ID'])\n"
        "os.makedirs('/artifacts/out', exist_ok=True)\n"
        "open('/artifacts/out/result.txt', 'w').write(os.environ['JOB_ARTIFACTS_DIR'] + ' ' + os.environ['GREETING'])\n"
        "print('storage', os.environ['JOB_STORAGE_DIR'], os.path.isdir('/storage'))\n"
    )
    job = await api.submit(spec(image=PYTHON, command=["python3", "-c", code], env={"GREETING": "hi"}))
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks) == f"from the workspace /workspace {job['id']}\nstorage /storage True\n"
    assert chunks[-1]["status"] == "succeeded"
    listed = (await api.call("GET", "jobs", job["id"], "artifacts"))["artifacts"]
    assert [a["path"] for a in listed] == ["out/result.txt"]
    resp = await api.call("GET", "jobs", job["id"], "artifacts", "out", "result.txt")
    assert resp.body == b"/artifacts hi"
    assert containers(engine_client, job["id"]) == []  # removed once collected


@both_engines
async def test_stdout_stderr_and_exit_codes(api, workspace, spec):
    job = await api.submit(spec(command="echo out; echo err >&2; exit 7"))
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks, "stdout") == "out\n" and log_text(chunks, "stderr") == "err\n"
    done = await api.job(job["id"])
    assert done["status"] == "failed" and done["reason"] == "exit_code" and done["exit_code"] == 7


@both_engines
async def test_storage_persists_across_container_jobs(api, workspace, spec):
    first = await api.submit(spec(command="echo 41 > /storage/n"))
    assert (await api.wait(first["id"]))["status"] == "succeeded"
    second = await api.submit(spec(command="cat /storage/n"))
    assert log_text(await api.logs(second["id"], follow=True)) == "41\n"


@both_engines
async def test_cancel_stops_the_container(api, workspace, engine_client, spec):
    job = await api.submit(spec(command="echo started; sleep 60"))
    await api.wait_for_output(job["id"], "started")
    started = time.monotonic()
    cancelled = await api.call("POST", "jobs", job["id"], "cancel")
    done = cancelled if cancelled["status"] == "cancelled" else await api.wait(job["id"])
    assert done["status"] == "cancelled" and time.monotonic() - started < 10
    for _ in range(50):
        if not containers(engine_client, job["id"]):
            break
        await asyncio.sleep(0.1)
    assert containers(engine_client, job["id"]) == []


@pytest.mark.parametrize("extra_config", [{"DockerBackend": {"max_running": 12}}])
async def test_many_containers_are_followed_by_two_threads(api, workspace, docker_client, extra_config):
    """12 containers at once: one reader thread and one event stream follow them all (no thread
    per container); a container killed outside the service ends its job through that stream."""
    import threading

    def followers() -> list[str]:
        return sorted(t.name for t in threading.enumerate() if t.name.startswith(("jobs-docker-", "job-")))

    jobs = [await api.submit(docker_job(command=f"echo begin {i}; sleep 30; echo never")) for i in range(12)]
    for job in jobs:
        await api.wait_for_output(job["id"], "begin", timeout=60)
    assert followers() == ["jobs-docker-events", "jobs-docker-reader"]
    for job in jobs[1:]:
        await api.call("POST", "jobs", job["id"], "cancel")
    victim = jobs[0]
    docker_client.api.kill(containers(docker_client, victim["id"])[0].id, signal="SIGKILL")
    done = await api.wait(victim["id"], timeout=20)
    assert done["status"] == "failed" and done["exit_code"] == 137
    assert log_text(await api.logs(victim["id"])) == "begin 0\n"
    for job in jobs[1:]:
        assert (await api.wait(job["id"], timeout=20))["status"] == "cancelled"
    assert followers() == ["jobs-docker-events", "jobs-docker-reader"]


@both_engines
async def test_timeout(api, workspace, spec):
    job = await api.submit(spec(command="echo go; sleep 60", timeout=1))
    done = await api.wait(job["id"], timeout=20)
    assert done["status"] == "failed" and done["reason"] == "timeout"


async def test_out_of_memory(api, workspace):
    hog = "x = []\nwhile True:\n    x.append(bytearray(4 << 20))\n"
    job = await api.submit(docker_job(image=PYTHON, command=["python3", "-c", hog], resources={"memory": "32m"}))
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["reason"] == "oom" and "memory" in done["message"]


async def test_resource_limits_reach_the_container(api, workspace, docker_client, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["docker"].remove_finished = False
    job = await api.submit(docker_job(command="true", resources={"cpus": 0.5, "memory": "64m"}))
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    [container] = containers(docker_client, job["id"])
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 << 20 and host["PidsLimit"] == 4096
    assert host["Privileged"] is False and host["Init"] is True and host["NetworkMode"] == "bridge"
    assert "no-new-privileges" in host["SecurityOpt"]
    assert not any("docker.sock" in (m.get("Source") or "") for m in container.attrs["Mounts"])
    container.remove(force=True)


@both_engines
async def test_missing_image_fails_with_a_clear_message(api, workspace, spec, engine):
    job = await api.submit(spec(image="no-such-image:1.0", command="true"))
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["reason"] == "backend_error"
    assert "no-such-image:1.0" in done["message"] and f"{engine} load" in done["message"]


@both_engines
async def test_image_is_required(api, workspace, spec):
    reply = await api.submit({**spec(command="true"), "image": None}, expect=400)
    assert reply["errors"][0]["field"] == "image"


class TestGPUs:
    @pytest.fixture
    def jobs_config(self):
        return {"gpus": 2}

    async def test_gpu_request_on_an_engine_without_nvidia_runtime(self, api, workspace, docker_client):
        job = await api.submit(docker_job(command="true", resources={"gpus": 1}))
        done = await api.wait(job["id"], timeout=30)
        assert done["status"] == "failed" and done["reason"] == "backend_error"
        assert "NVIDIA" in done["message"] and "could not select device driver" in done["message"]
        assert containers(docker_client, job["id"]) == []  # nothing left behind
        backends = {g["index"]: g["in_use"] for g in (await api.call("GET", "backends"))["gpus"]}
        assert backends == {0: 0, 1: 0}  # its GPU was freed

    async def test_more_gpus_than_the_host_has(self, api, workspace):
        reply = await api.submit(docker_job(command="true", resources={"gpus": 3}), expect=400)
        assert reply["errors"][0]["field"] == "resources.gpus"


class TestGPUQueue:
    """Through `gpu_request = "env"` the allocation is visible without an NVIDIA runtime."""

    @pytest.fixture
    def jobs_config(self):
        return {"gpus": 2}

    @pytest.fixture
    def extra_config(self):
        return {"DockerBackend": {"gpu_request": "env"}}

    async def test_distinct_devices_waiting_and_freeing(self, api, workspace, jobs_data):
        wait = ('while [ ! -e /storage/go ]; do sleep 0.05; done; '
                'echo "nvidia=$NVIDIA_VISIBLE_DEVICES cuda=$CUDA_VISIBLE_DEVICES"')
        first = await api.submit(docker_job(command=wait, resources={"gpus": 1}))
        second = await api.submit(docker_job(command=wait, resources={"gpus": 1}))
        both = await api.submit(docker_job(command=wait, resources={"gpus": 2}))
        a = await api.wait(first["id"], {"running"})
        b = await api.wait(second["id"], {"running"})
        assert sorted(a["gpus"] + b["gpus"]) == [0, 1]
        await asyncio.sleep(0.5)
        assert (await api.job(both["id"]))["status"] == "queued"
        (jobs_data / "storage").mkdir(exist_ok=True)
        (jobs_data / "storage" / "go").write_text("")
        assert log_text(await api.logs(first["id"], follow=True)) == f"nvidia={a['gpus'][0]} cuda=0\n"
        assert log_text(await api.logs(both["id"], follow=True)) == "nvidia=0,1 cuda=0,1\n"


class TestCopyMode:
    """A remote engine gets the workspace as a tar stream and gives artifacts back at the end."""

    @pytest.fixture
    def extra_config(self):
        return {"DockerBackend": {"workspace_mode": "copy", "storage_volume": "jupyter-jobs-test-storage"}}

    async def test_workspace_in_artifacts_out(self, api, workspace):
        (workspace / "sub").mkdir()
        (workspace / "sub" / "in.txt").write_text("copied in")
        job = await api.submit(docker_job(command="cat sub/in.txt; mkdir -p /artifacts/d; "
                                                  "cp sub/in.txt /artifacts/d/out.txt"))
        assert log_text(await api.logs(job["id"], follow=True)) == "copied in"
        listed = (await api.call("GET", "jobs", job["id"], "artifacts"))["artifacts"]
        assert [a["path"] for a in listed] == ["d/out.txt"]


class TestUnreachableEngine:
    @pytest.fixture
    def extra_config(self, tmp_path):
        return {"DockerBackend": {"base_url": f"unix://{tmp_path}/no-docker.sock"}}

    async def test_unavailable_with_reason_and_submit_refused(self, api, workspace):
        docker = {b["name"]: b for b in (await api.call("GET", "backends"))["backends"]}["docker"]
        assert docker["available"] is False and "cannot reach the Docker engine" in docker["reason"]
        reply = await api.submit(docker_job(command="true"), expect=400)
        assert reply["errors"][0]["field"] == "backend" and "unavailable" in reply["message"]


class _Forwarder:
    """A Unix socket that forwards to the real engine's, until stopped: an engine that goes away."""

    def __init__(self, path) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen()
        self.open: list = []
        self.lock = threading.Lock()  # a connection accepted while it stops is closed too
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://"))
            with self.lock:
                self.open += [client, engine]
                if self.stopped:
                    client.close()
                    engine.close()
                    return
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.server.close()
            for s in self.open:
                s.close()


class TestEngineThatGoesAway:
    """The engine's facts are kept a minute, but whether it answers is asked at every submit."""

    @pytest.fixture
    def forwarder(self, tmp_path):
        f = _Forwarder(tmp_path / "engine.sock")
        yield f
        f.stop()

    @pytest.fixture
    def extra_config(self, tmp_path, forwarder):
        return {"DockerBackend": {"base_url": f"unix://{tmp_path}/engine.sock"}}

    async def test_a_submit_after_the_engine_went_is_refused(self, api, workspace, forwarder):
        docker = {b["name"]: b for b in (await api.call("GET", "backends"))["backends"]}["docker"]
        assert docker["available"] is True and docker["details"]["engine"], docker
        job = await api.submit(docker_job(command="echo up"))
        assert log_text(await api.logs(job["id"], follow=True)) == "up\n"
        forwarder.stop()
        reply = await api.submit(docker_job(command="true"), expect=400)
        assert reply["errors"][0]["field"] == "backend" and "cannot reach the Docker engine" in reply["message"]


class TestDatasets:
    """Admin-configured read-only mounts, and the user jobs run as."""

    @pytest.fixture
    def extra_config(self, tmp_path):
        data = tmp_path / "imagenet"
        data.mkdir()
        (data / "labels.txt").write_text("cat\ndog\n")
        return {"DockerBackend": {"datasets": {str(data): "/datasets/imagenet"}, "user": "1234:1234"}}

    async def test_dataset_is_mounted_read_only_and_the_user_applies(self, api, workspace):
        job = await api.submit(docker_job(command="wc -l < /datasets/imagenet/labels.txt; id -u; "
                                                  "touch /datasets/imagenet/new 2>/dev/null || echo read-only"))
        assert log_text(await api.logs(job["id"], follow=True)) == "2\n1234\nread-only\n"


@both_engines
async def test_artifacts_a_root_container_swaps_for_symlinks_are_never_served(api, workspace, spec):
    """A container's root may plant links to host paths in its bind-mounted artifacts folder."""
    from test_hardening import SWAPPER, _downloads_never_leave_the_artifacts

    (workspace / "swap.py").write_text(SWAPPER)
    job = await api.submit(spec(image=PYTHON, command=["python3", "swap.py", "8"]))
    await api.wait_for_output(job["id"], "swapping")
    codes = await _downloads_never_leave_the_artifacts(api, job["id"], 150)
    assert 200 in codes
    await api.call("POST", "jobs", job["id"], "cancel", body={})


class TestTelemetry:
    @pytest.fixture
    def jobs_config(self):
        return {"metrics_interval": 0.5}

    async def test_cpu_memory_and_metrics_of_a_container(self, api, workspace):
        """The engine's figures for the container's cgroup, and the job's own metrics through
        the mounted /metrics folder."""
        code = ("import json, os, time\nhold = bytearray(200 * 1024 * 1024)\n"
                "for i in range(0, len(hold), 4096):\n    hold[i] = 1\n"
                "end = time.time() + 4\nwhile time.time() < end:\n    pass\n"
                "open(os.environ['JOB_METRICS_FILE'], 'a').write(json.dumps({'step': 1, 'loss': 0.5}) + '\\n')\n")
        job = await api.submit(docker_job(image=PYTHON, command=["python3", "-c", code]))
        done = await api.wait(job["id"], timeout=90)
        assert done["status"] == "succeeded", done
        series = (await api.call("GET", "jobs", job["id"], "metrics"))["series"]
        assert max(series["cpu.percent"]["values"]) > 50
        assert max(series["memory.rss"]["values"]) > 150 * 2**20
        assert series["loss"] == {"steps": [1], "values": [0.5], "times": None}
