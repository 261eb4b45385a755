"""The slurm backend against real Slurm daemons (`bash scripts/slurm-cluster`: munged,
slurmctld and two slurmd nodes on this machine, each with two fake GPUs as gres)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import SLURM_CONF, docker_problem, free_port, log_text, require, slurm_problem

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-cluster"
DOCKER_TEMPLATE = ("docker run --rm --init --network=none -v {workspace}:/workspace -w /workspace "
                   "-v {artifacts}:/artifacts -v {storage}:/storage --env-file {env_file} "
                   "-e RANK -e NODE_RANK -e LOCAL_RANK -e WORLD_SIZE -e MASTER_ADDR -e MASTER_PORT {image}")


def _slurm_jobs() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=30)
    return set(out.stdout.split())


@pytest.fixture(autouse=True)
def _cluster():
    """The cluster is there; a test that fails midway leaves no job holding its nodes for the
    tests after it (a job serving a port runs until cancelled)."""
    require("slurm", slurm_problem())
    before = _slurm_jobs()
    yield
    left = _slurm_jobs() - before
    if left:
        subprocess.run(["scancel", *sorted(left)], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=30)


def slurm_config(shared: Path) -> dict:
    return {"SlurmBackend": {"slurm_conf": SLURM_CONF, "shared_dir": str(shared), "poll_interval": 0.2,
                             "container_template": DOCKER_TEMPLATE}}


@pytest.fixture
def extra_config(tmp_path):
    return slurm_config(tmp_path / "shared")


def slurm_job(**spec):
    return {"backend": "slurm", "workspace": "proj", **spec}


async def test_end_to_end_with_artifacts(api, workspace, tmp_path):
    code = ("import os, sys\nprint('out', os.environ['JOB_ID'], os.path.basename(os.getcwd()))\n"
            "print('err', file=sys.stderr)\n"
            "open(os.environ['JOB_ARTIFACTS_DIR'] + '/result.txt', 'w').write('from slurm')\n")
    job = await api.submit(slurm_job(command=["python3", "-c", code]))
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks, "stdout") == f"out {job['id']} workspace\n" and log_text(chunks, "stderr") == "err\n"
    assert chunks[-1]["status"] == "succeeded"
    assert (tmp_path / "shared" / "jobs" / job["id"] / "stdout").exists()  # in the shared folder
    listed = (await api.call("GET", "jobs", job["id"], "artifacts"))["artifacts"]
    assert [a["path"] for a in listed] == ["result.txt"]
    assert (await api.call("GET", "jobs", job["id"], "artifacts", "result.txt")).body == b"from slurm"


async def test_server_credentials_never_reach_the_job(api, workspace):
    job = await api.submit(slurm_job(command='echo "token=${JUPYTER_JOBS_TOKEN:-none}"'))
    assert log_text(await api.logs(job["id"], follow=True)) == "token=none\n"


async def test_exit_codes(api, workspace):
    job = await api.submit(slurm_job(command="echo partial; exit 3"))
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["reason"] == "exit_code" and done["exit_code"] == 3
    assert log_text(await api.logs(job["id"]), "stdout") == "partial\n"


async def test_cancel(api, workspace):
    job = await api.submit(slurm_job(command="echo started; sleep 120"))
    await api.wait_for_output(job["id"], "started", timeout=60)
    await api.call("POST", "jobs", job["id"], "cancel")
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "cancelled"


async def test_timeout(api, workspace):
    job = await api.submit(slurm_job(command="echo go; sleep 120", timeout=3))
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["reason"] == "timeout"


async def test_gpu_gres_and_cuda_visible_devices(api, workspace):
    one = await api.submit(slurm_job(command='echo "gpus=$CUDA_VISIBLE_DEVICES"', resources={"gpus": 1}))
    two = await api.submit(slurm_job(command='echo "gpus=$CUDA_VISIBLE_DEVICES"', resources={"gpus": 2}))
    assert log_text(await api.logs(one["id"], follow=True)) in ("gpus=0\n", "gpus=1\n")
    assert log_text(await api.logs(two["id"], follow=True)) == "gpus=0,1\n"
    assert (await api.job(two["id"]))["gpus"] == []  # Slurm allocated them, not the Jupyter host


@pytest.mark.parametrize("spec,field,words", [
    ({"resources": {"gpus": 5}}, "resources.gpus", "Slurm refuses"),
    ({"resources": {"nodes": 3}}, "resources.nodes", "Slurm refuses"),
    ({"slurm": {"partition": "nowhere"}}, "slurm.partition", "partition"),
])
async def test_impossible_requests_are_400_with_slurms_message(api, workspace, spec, field, words):
    reply = await api.submit(slurm_job(command="true", **spec), expect=400)
    assert reply["errors"][0]["field"] == field and words in reply["message"]


async def test_two_node_job_each_rank_prints_its_rank(api, workspace):
    code = 'echo "rank=$RANK node_rank=$NODE_RANK local_rank=$LOCAL_RANK world=$WORLD_SIZE master=${MASTER_ADDR:+set}"'
    job = await api.submit(slurm_job(command=code, resources={"nodes": 2}))
    lines = sorted(log_text(await api.logs(job["id"], follow=True)).splitlines())
    assert lines == ["rank=0 node_rank=0 local_rank=0 world=2 master=set",
                     "rank=1 node_rank=1 local_rank=0 world=2 master=set"]


async def test_per_job_partition(api, workspace):
    job = await api.submit(slurm_job(command="echo $SLURM_JOB_PARTITION", slurm={"partition": "small"}))
    assert log_text(await api.logs(job["id"], follow=True)) == "small\n"


async def test_image_through_the_container_runtime(api, workspace):
    require("docker", docker_problem())
    (workspace / "data.txt").write_text("in the container")
    command = 'cat data.txt; echo " $JOB_ARTIFACTS_DIR"; echo done > /artifacts/out.txt'
    job = await api.submit(slurm_job(image="jupyter-jobs/busybox:test", command=command))
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks) == "in the container /artifacts\n" and chunks[-1]["status"] == "succeeded"
    assert [a["path"] for a in (await api.call("GET", "jobs", job["id"], "artifacts"))["artifacts"]] == ["out.txt"]


def test_server_restart_reattaches_by_slurm_job_id(server_process, tmp_path):
    config = slurm_config(tmp_path / "shared")["SlurmBackend"]
    extra = [f"--SlurmBackend.{k}={v}" for k, v in config.items()]
    server = server_process(extra=extra).start()
    count = 'i=0; while [ $i -lt 40 ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done'
    job = server.request("POST", "/jupyter-jobs/jobs", {"backend": "slurm", "command": count})
    deadline = time.monotonic() + 60
    while "line 3\n" not in log_text(server.logs(job["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    time.sleep(0.5)
    server.start()
    chunks = server.logs(job["id"], follow=True)
    assert log_text(chunks) == "".join(f"line {i}\n" for i in range(40)) and chunks[-1]["status"] == "succeeded"


async def test_a_job_pending_in_slurm_is_queued_with_slurms_reason(api, workspace):
    job = await api.submit(slurm_job(command="echo late", slurm={"sbatch_args": ["--begin=now+3600"]}))
    deadline = time.monotonic() + 10
    while "BeginTime" not in ((got := await api.job(job["id"]))["waiting"] or ""):
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.1)
    assert got["status"] == "queued" and got["started_at"] is None and got["waiting"] == "Slurm: BeginTime"
    cancelled = await api.call("POST", "jobs", job["id"], "cancel", body={})
    assert cancelled["status"] == "cancelled"
    assert (await api.job(job["id"]))["status"] == "cancelled"


def test_slurmctld_restart(server_process, tmp_path):
    config = slurm_config(tmp_path / "shared")["SlurmBackend"]
    server = server_process(extra=[f"--SlurmBackend.{k}={v}" for k, v in config.items()]).start()
    job = server.request("POST", "/jupyter-jobs/jobs",
                         {"backend": "slurm", "command": "echo before; sleep 4; echo after"})
    deadline = time.monotonic() + 60
    while "before" not in log_text(server.logs(job["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run(["bash", str(SCRIPT), "stop-ctld"], check=True)
    try:
        slurm = {b["name"]: b for b in server.request("GET", "/jupyter-jobs/backends")["backends"]}["slurm"]
        assert slurm["available"] is False and "slurmctld" in slurm["reason"]
        try:
            server.request("POST", "/jupyter-jobs/jobs", {"backend": "slurm", "command": "true"})
            raise AssertionError("submit accepted while slurmctld is down")
        except Exception as exc:
            assert "400" in str(exc)
        assert server.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["status"] == "running"
    finally:
        subprocess.run(["bash", str(SCRIPT), "start-ctld"], check=True)
    done = server.wait(job["id"], timeout=90)
    assert done["status"] == "succeeded" and log_text(server.logs(job["id"])) == "before\nafter\n"


@pytest.mark.parametrize("jobs_config", [{"metrics_interval": 0.5}])
async def test_telemetry_and_metrics_of_a_slurm_job(api, workspace):
    """CPU and memory as sstat reports them (the test cluster gathers job accounting), and
    the job's own metrics through the shared folder."""
    code = ("import json, os, time\nhold = bytearray(150 * 1024 * 1024)\n"
            "for i in range(0, len(hold), 4096):\n    hold[i] = 1\n"
            "end = time.time() + 5\nwhile time.time() < end:\n    pass\n"
            "open(os.environ['JOB_METRICS_FILE'], 'a').write(json.dumps({'step': 2, 'loss': 0.25}) + '\\n')\n")
    job = await api.submit(slurm_job(command=["python3", "-c", code]))
    done = await api.wait(job["id"], timeout=90)
    assert done["status"] == "succeeded", done
    series = (await api.call("GET", "jobs", job["id"], "metrics"))["series"]
    assert max(series["cpu.percent"]["values"]) > 50
    assert max(series["memory.rss"]["values"]) > 100 * 2**20
    assert series["loss"]["values"] == [0.25]
    assert not [n for n in done["notes"] if n.startswith("telemetry")]


SLURM_DAG = """\
name: on-the-cluster
defaults: {backend: slurm}
jobs:
  prepare:
    command: sleep 3 && echo data > "$JOB_ARTIFACTS_DIR/data.txt"
  train:
    needs: prepare
    matrix: {lr: [1, 2], batch: [8, 16]}
    command: >-
      test "$(cat "$JOB_INPUTS_DIR/prepare/data.txt")" = data &&
      echo "lr=${{ matrix.lr }} batch=$MATRIX_BATCH" > "$JOB_ARTIFACTS_DIR/result.txt"
  report:
    needs: train
    command: cat "$JOB_INPUTS_DIR"/train/*/result.txt | sort
"""


def slurm_queue() -> set[str]:
    """The names of the jobs Slurm still has pending or running."""
    shown = subprocess.run(["squeue", "-h", "-o", "%j"], env={**os.environ, "SLURM_CONF": SLURM_CONF},
                           capture_output=True, text=True, timeout=10, check=True)
    return set(shown.stdout.split())


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return got


def submitted_to_slurm(server, run_id: str) -> list[dict]:
    """Waits until every job of the run is in Slurm's queue (the graph handed over whole)."""
    run = server.request("GET", f"/jupyter-jobs/workflows/{run_id}")
    names = {f"jupyter-job-{j['job_id']}" for j in run["jobs"]}
    wait_until(lambda: names <= slurm_queue(), 60, f"not all of {run['jobs']} reached Slurm")
    return run["jobs"]


def test_a_slurm_dag_runs_on_slurms_dependencies_while_the_server_is_down(server_process, tmp_path):
    config = slurm_config(tmp_path / "shared")["SlurmBackend"]
    server = server_process(extra=[f"--SlurmBackend.{k}={v}" for k, v in config.items()]).start()
    (server.root / "proj").mkdir()
    run = server.request("POST", "/jupyter-jobs/workflows", {"spec": SLURM_DAG, "workspace": "proj"})
    assert run["scheduler"] == "slurm" and len(run["jobs"]) == 6
    jobs = submitted_to_slurm(server, run["id"])
    report = wait_until(lambda: "Dependency" in ((j := server.request(
        "GET", f"/jupyter-jobs/jobs/{jobs[-1]['job_id']}"))["waiting"] or "") and j, 30, "no Slurm reason")
    assert report["status"] == "queued" and report["waiting"] == "Slurm: Dependency", report
    server.stop(signal.SIGTERM)
    names = {f"jupyter-job-{j['job_id']}" for j in jobs}
    wait_until(lambda: not names & slurm_queue(), 90, "the cluster did not finish the graph")
    server.start()  # it only follows: every job is over, and the run with them
    done = wait_until(lambda: (r := server.request("GET", f"/jupyter-jobs/workflows/{run['id']}"))["status"]
                      in ("succeeded", "failed", "cancelled") and r, 60, "the run did not end")
    assert done["status"] == "succeeded", done["jobs"]
    assert log_text(server.logs(jobs[-1]["job_id"])) == "".join(
        f"lr={lr} batch={b}\n" for lr, b in [("1", "16"), ("1", "8"), ("2", "16"), ("2", "8")])


def test_a_failure_in_a_slurm_dag_skips_what_needs_it(server_process, tmp_path):
    config = slurm_config(tmp_path / "shared")["SlurmBackend"]
    server = server_process(extra=[f"--SlurmBackend.{k}={v}" for k, v in config.items()]).start()
    (server.root / "proj").mkdir()
    spec = SLURM_DAG.replace('sleep 3 && echo data', 'sleep 3 && exit 4 && echo data')
    run = server.request("POST", "/jupyter-jobs/workflows", {"spec": spec, "workspace": "proj"})
    submitted_to_slurm(server, run["id"])
    done = wait_until(lambda: (r := server.request("GET", f"/jupyter-jobs/workflows/{run['id']}"))["status"]
                      in ("succeeded", "failed", "cancelled") and r, 60, "the run did not end")
    assert done["status"] == "failed"
    assert [j["status"] for j in done["jobs"]] == ["failed"] + ["skipped"] * 5
    skipped = server.request("GET", f"/jupyter-jobs/jobs/{done['jobs'][1]['job_id']}")
    assert "DependencyNeverSatisfied" in skipped["message"] and skipped["started_at"] is None


WHEELS = Path(__file__).resolve().parent / "data" / "wheels-for-slurm"


@pytest.fixture(scope="module", autouse=False)
def slurm_wheels():
    from test_environments import make_wheel

    make_wheel(WHEELS, "tinypkg", "3.0", "VALUE = 'tiny 3.0'\n")
    yield WHEELS
    shutil.rmtree(WHEELS, ignore_errors=True)


@pytest.mark.parametrize("jobs_config", [{"pip_index_url": "none", "pip_find_links": [str(WHEELS)]}])
async def test_an_environment_in_the_shared_folder(api, workspace, slurm_wheels, tmp_path):
    code = f"import tinypkg, sys; print(tinypkg.VALUE, sys.prefix.startswith({str(tmp_path / 'shared')!r}))"
    job = await api.submit(slurm_job(command=["python3", "-c", code], requirements=["tinypkg==3.0"]))
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "succeeded", done["message"]
    assert log_text(await api.logs(job["id"]), "stdout") == "tiny 3.0 True\n"  # built where every node sees it


async def test_a_slurm_job_serves_a_port_on_its_node(api, workspace):
    """The endpoint is the node's address (NodeAddr, from Slurm) and the declared port."""
    port = free_port()
    job = await api.submit(slurm_job(command="exec python3 -m http.server $PORT_WEB",
                                     expose=[{"port": port, "name": "web"}]))
    deadline = asyncio.get_running_loop().time() + 60
    while (info := await api.job(job["id"]))["endpoints"][0]["state"] != "ready":
        assert asyncio.get_running_loop().time() < deadline and info["status"] in ("queued", "running"), info
        await asyncio.sleep(0.2)
    assert info["endpoints"][0]["port"] == port
    keyed = info["endpoints"][0]["path"].removeprefix("jupyter-jobs/") + "hello.py"  # ep/<key>/hello.py
    served = await api.call("GET", *keyed.split("/"))
    assert served.body == (workspace / "hello.py").read_bytes()
    await api.call("POST", "jobs", job["id"], "cancel")
    assert (await api.wait(job["id"], timeout=30))["endpoints"][0]["state"] == "gone"
