"""Datasets against a real server, real files and the real snapshot store: versions from a
folder or a job's artifacts, stored by content; jobs reading a version read-only on local,
docker and Slurm; versions resolved at submit; lineage; deletion refused while a job reads one;
bad input named; the history and the blobs surviving housekeeping and a restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import SLURM_CONF, log_text, require, slurm_problem

READ = ("import os, pathlib, stat\nroot = pathlib.Path(os.environ['JOB_DATASETS_DIR'])\n"
        "print(sorted(p.name for p in (root / 'mnist').iterdir()), (root / 'mnist' / 'a.txt').read_text())\n"
        "print(oct(stat.S_IMODE((root / 'mnist' / 'a.txt').stat().st_mode)), "
        "oct(stat.S_IMODE((root / 'mnist').stat().st_mode)))\n")


def platform(jp_serverapp):
    return jp_serverapp.web_app.settings["jupyter_jobs_platform"]


@pytest.fixture
def data(jp_root_dir):
    folder = jp_root_dir / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    (folder / "c.bin").write_bytes(os.urandom(100_000))
    return folder


async def test_versions_from_a_folder_store_only_what_changed(jp_serverapp, api, data):
    store = platform(jp_serverapp).jobs.snapshots
    first = await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    assert (first["name"], first["version"], first["files"], first["size"]) == ("mnist", 1, 3, 100_009)
    blobs = store.blob_count()
    (data / "a.txt").write_text("ALPHA, changed")
    second = await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    assert second["version"] == 2 and store.blob_count() == blobs + 1, "one changed file, one new blob"
    listed = (await api.call("GET", "datasets"))["datasets"]
    assert [(d["name"], d["versions"], d["latest"]["version"]) for d in listed] == [("mnist", 2, 2)]
    assert [v["version"] for v in (await api.call("GET", "datasets", "mnist"))["versions"]] == [2, 1]


async def test_a_local_job_reads_the_version_it_was_given_read_only(jp_serverapp, api, data, workspace):
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    job = await api.submit({"command": ["python3", "-c", READ], "workspace": "proj",
                            "datasets": [{"name": "mnist"}]})
    assert job["spec"]["datasets"] == [{"name": "mnist", "version": 1, "mount": None}], "resolved at submit"
    done = await api.wait(job["id"])
    assert done["status"] == "succeeded", log_text(await api.logs(job["id"]))
    assert log_text(await api.logs(job["id"]), "stdout") == "['a.txt', 'c.bin', 'sub'] alpha\n0o444 0o555\n"

    (data / "a.txt").write_text("version two")
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    again = await api.call("POST", "jobs", job["id"], "rerun", expect=201)
    assert again["spec"]["datasets"][0]["version"] == 1
    await api.wait(again["id"])
    assert "alpha" in log_text(await api.logs(again["id"]), "stdout"), "a rerun reads the same bytes"
    lineage = await api.call("GET", "datasets", "mnist", "versions", "1")
    assert {j["id"] for j in lineage["read_by"]} == {job["id"], again["id"]}


async def test_a_version_from_a_jobs_artifacts_records_its_maker(api, workspace):
    code = ("import os, pathlib\np = pathlib.Path(os.environ['JOB_ARTIFACTS_DIR'], 'out')\np.mkdir()\n"
            "(p / 'x.txt').write_text('made by a job')\nos.mkfifo(p.parent / 'pipe')\n")
    job = await api.submit({"command": ["python3", "-c", code], "workspace": "proj"})
    await api.wait(job["id"])
    made = await api.call("POST", "datasets", "features", "versions", body={"job": job["id"], "path": "out"},
                          expect=201)
    assert (made["files"], made["job"], made["source"]) == (1, job["id"], {"job": job["id"], "path": "out"})
    bad = await api.call("POST", "datasets", "features", "versions", body={"job": job["id"], "path": "../.."},
                         expect=400)
    assert bad["errors"][0]["field"] == "path"
    one = await api.call("POST", "datasets", "features", "versions", body={"job": job["id"], "path": "out/x.txt"},
                         expect=201)
    assert (one["version"], one["files"], one["size"]) == (2, 1, len("made by a job")), "one file, as a version"
    fifo = await api.call("POST", "datasets", "features", "versions", body={"job": job["id"], "path": "pipe"},
                          expect=400)
    assert fifo["errors"][0]["field"] == "path", "a FIFO the job left is never opened"


async def test_bad_input_is_named(api, data, workspace, jp_root_dir, tmp_path):
    (tmp_path / "secret.txt").write_text("host file")
    (data / "out").symlink_to(tmp_path / "secret.txt")
    made = await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    assert made["files"] == 3 and any("out" in n for n in made["notes"]), "a symlink out is left out, and said"
    cases = [
        ({"folder": "../.."}, "folder"), ({"folder": "nowhere"}, "folder"), ({}, "folder"),
        ({"folder": "data", "colour": 1}, "colour"), ({"job": "nojob"}, None),
    ]
    for body, field in cases:
        reply = await api.call("POST", "datasets", "mnist", "versions", body=body, expect=404 if field is None else 400)
        if field:
            assert reply["errors"][0]["field"] == field, (body, reply)
    assert (await api.call("POST", "datasets", "Bad Name", "versions", body={"folder": "data"},
                           expect=400))["errors"][0]["field"] == "name"
    for datasets, field in [([{"name": "nope"}], "datasets.0.name"), ([{"name": "mnist", "version": 9}],
                            "datasets.0.version"), ([{"name": "mnist", "mount": "/workspace/x"}], "datasets.0.mount"),
                            ([{"name": "mnist", "mount": "data/../x"}], "datasets.0.mount")]:
        reply = await api.submit({"command": "true", "workspace": "proj", "datasets": datasets}, expect=400)
        assert reply["errors"][0]["field"] == field, reply
    await api.call("DELETE", "datasets", "mnist", "versions", "1", expect=204)
    reply = await api.submit({"command": "true", "workspace": "proj", "datasets": [{"name": "mnist", "version": 1}]},
                             expect=400)
    assert "was deleted" in reply["errors"][0]["message"], "a deleted version is not read again"
    await api.call("GET", "datasets", "mnist", "versions", "1", expect=404)
    assert (await api.call("GET", "datasets", "mnist", "versions", "x", expect=400))["errors"][0]["field"] == "version"


async def test_a_version_read_by_a_running_job_cannot_be_deleted(api, data, workspace, jobs_data):
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    job = await api.submit({"command": "sleep 30", "workspace": "proj", "datasets": [{"name": "mnist"}]})
    await api.wait(job["id"], {"running"})  # its version written out for it
    refused = await api.call("DELETE", "datasets", "mnist", "versions", "1", expect=409)
    assert job["id"] in refused["message"]
    await api.call("POST", "jobs", job["id"], "cancel")
    await api.wait(job["id"])
    cache = jobs_data / "datasets"
    assert len(list(cache.iterdir())) == 1, "written out once for the job"
    await api.call("DELETE", "datasets", "mnist", "versions", "1", expect=204)
    assert list(cache.iterdir()) == [], "a deleted version's files go with it"
    second = await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    assert second["version"] == 2, "a deleted version's number is never given again"


async def _versions(api, data, count: int) -> None:
    for i in range(count):
        (data / "a.txt").write_text(f"version {i + 1}")
        await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)


async def test_a_schedule_and_a_named_workflows_default_hold_their_versions(api, data, workspace):
    await _versions(api, data, 3)
    nightly = await api.call("POST", "schedules", body={"name": "nightly", "cron": "0 3 * * *", "spec": {
        "command": "true", "workspace": "proj", "datasets": [{"name": "mnist", "version": 1}]}}, expect=201)
    spec = "inputs: {data: {type: dataset, default: 'mnist:2'}}\njobs: {a: {command: 'true'}}\n"
    await api.call("PUT", "workflow-definitions", "train", body={"spec": spec, "workspace": "proj"}, expect=201)
    one = await api.call("DELETE", "datasets", "mnist", "versions", "1", expect=409)
    assert "schedule 'nightly'" in one["message"], one
    two = await api.call("DELETE", "datasets", "mnist", "versions", "2", expect=409)
    assert "named workflow 'train'" in two["message"], two
    await api.call("PUT", "workflow-definitions", "train", body={"spec": spec.replace("mnist:2", "mnist"),
                                                                 "workspace": "proj"}, expect=201)
    await api.call("DELETE", "datasets", "mnist", "versions", "2", expect=204)  # its newest spec reads the newest
    await api.call("DELETE", "schedules", nightly["id"], expect=204)
    await api.call("DELETE", "datasets", "mnist", "versions", "1", expect=204)
    last = await api.call("DELETE", "datasets", "mnist", "versions", "3", expect=409)
    assert "named workflow 'train'" in last["message"], "`mnist` without a version holds its last live version"


@pytest.mark.parametrize("jobs_config", [{"retention": {"versions_max_age": 1}, "housekeeping_interval": 0.3}])
async def test_retention_deletes_old_versions_nothing_holds_never_the_newest(api, data, workspace):
    await _versions(api, data, 4)
    await api.call("POST", "schedules", body={"name": "nightly", "cron": "0 3 * * *", "spec": {
        "command": "true", "workspace": "proj", "datasets": [{"name": "mnist", "version": 2}]}}, expect=201)
    deadline = asyncio.get_running_loop().time() + 20
    while [v["version"] for v in (await api.call("GET", "datasets", "mnist"))["versions"]] != [4, 2]:
        assert asyncio.get_running_loop().time() < deadline, (await api.call("GET", "datasets", "mnist"))["versions"]
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # more passes: what is held or newest stays
    assert [v["version"] for v in (await api.call("GET", "datasets", "mnist"))["versions"]] == [4, 2]


async def test_versions_survive_housekeeping(jp_serverapp, api, data, workspace):
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    core = platform(jp_serverapp).jobs
    await core.housekeeper.once()  # no job refers to the version's snapshot: the dataset does
    job = await api.submit({"command": ["python3", "-c", READ], "workspace": "proj", "datasets": [{"name": "mnist"}]})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    assert "alpha" in log_text(await api.logs(job["id"]), "stdout")


def test_versions_survive_a_restart(tmp_path):
    from support import ServerProcess

    (tmp_path / "root" / "data").mkdir(parents=True)
    (tmp_path / "root" / "data" / "a.txt").write_text("alpha")
    server = ServerProcess(tmp_path / "root", tmp_path / "data").start()
    try:
        server.request("POST", "/jupyter-jobs/datasets/mnist/versions", {"folder": "data"})
    finally:
        server.stop()
    server.start()
    try:
        assert server.request("GET", "/jupyter-jobs/datasets/mnist")["versions"][0]["files"] == 1
        job = server.request("POST", "/jupyter-jobs/jobs", {"command": "cat $JOB_DATASETS_DIR/mnist/a.txt",
                                                            "workspace": "data", "datasets": [{"name": "mnist"}]})
        assert server.wait(job["id"])["status"] == "succeeded"
        assert log_text(server.logs(job["id"]), "stdout") == "alpha"
        (tmp_path / "root" / "data" / "a.txt").write_text("beta")
        cli = [str(Path(sys.executable).with_name("jupyter-jobs")), "--url", server.url, "--token", server.token]
        env = {**os.environ, "JUPYTER_JOBS_ROOT": str(tmp_path / "root")}
        made = subprocess.run([*cli, "--json", "dataset", "create", "mnist", "--folder", "."], capture_output=True,
                              text=True, cwd=tmp_path / "root" / "data", env=env, timeout=60)
        assert made.returncode == 0 and json.loads(made.stdout)["version"] == 2, made.stderr
        ran = subprocess.run([*cli, "run", "--dataset", "mnist:1", "--", "sh", "-c",
                              "cat $JOB_DATASETS_DIR/mnist/a.txt"],
                             capture_output=True, text=True, cwd=tmp_path / "root" / "data", env=env, timeout=60)
        assert ran.returncode == 0 and ran.stdout.strip().endswith("alpha"), (ran.stdout, ran.stderr)
        shown = subprocess.run([*cli, "dataset", "show", "mnist"], capture_output=True, text=True, env=env,
                               timeout=60)
        assert [line.split()[:2] for line in shown.stdout.splitlines()[1:]] == [["mnist", "2"], ["mnist", "1"]]
    finally:
        server.stop()


@pytest.mark.parametrize("jobs_config", [{"default_backend": "docker"}])
async def test_a_container_reads_it_at_datasets_or_its_mount(api, data, workspace, docker_client):
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    code = ("import os\nprint(os.environ['JOB_DATASETS_DIR'], open('/datasets/mnist/a.txt').read(), "
            "open('/data/m/sub/b.txt').read())\ntry:\n    open('/datasets/mnist/a.txt', 'w')\n"
            "except OSError as exc:\n    print('read-only', exc.errno)\n")
    spec = {"command": ["python3", "-c", code], "workspace": "proj", "image": "jupyter-jobs/python:test",
            "datasets": [{"name": "mnist"}, {"name": "mnist2", "mount": "/data/m"}]}
    job = await api.submit(spec, expect=400)
    assert job["errors"][0]["field"] == "datasets.1.name"
    await api.call("POST", "datasets", "mnist2", "versions", body={"folder": "data"}, expect=201)
    job = await api.submit(spec)
    done = await api.wait(job["id"], timeout=60)
    out = log_text(await api.logs(job["id"]), "stdout")
    assert done["status"] == "succeeded" and out == "/datasets alpha beta\nread-only 30\n", out  # EROFS


async def test_a_slurm_job_reads_it_from_the_shared_folder(api, data, workspace, tmp_path):
    require("slurm", slurm_problem())
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    job = await api.submit({"backend": "slurm", "command": ["python3", "-c", READ], "workspace": "proj",
                            "datasets": [{"name": "mnist"}]})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "succeeded", log_text(await api.logs(job["id"]))
    assert log_text(await api.logs(job["id"]), "stdout") == "['a.txt', 'c.bin', 'sub'] alpha\n0o444 0o555\n"
    assert list((tmp_path / "shared" / "datasets").iterdir()), "written out once where every node sees it"
    assert (tmp_path / "shared" / "datasets").stat().st_mode & 0o077 == 0, "and no other user of the cluster"


@pytest.fixture
def extra_config(tmp_path):
    return {"SlurmBackend": {"slurm_conf": SLURM_CONF, "shared_dir": str(tmp_path / "shared"), "poll_interval": 0.2}}



async def test_a_model_registered_from_a_job_records_its_metrics_and_is_read_and_downloaded(api, data, workspace):
    import io
    import zipfile

    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)
    train = ("import json, os, pathlib\nfrom jupyter_jobs.metrics import log\nlog(step=1, loss=0.9)\n"
             "log(step=2, loss=0.25, accuracy=0.93)\nout = pathlib.Path(os.environ['JOB_ARTIFACTS_DIR'], 'model')\n"
             "out.mkdir()\n(out / 'weights.bin').write_bytes(b'w' * 1000)\n(out / 'config.json').write_text('{}')\n")
    job = await api.submit({"command": ["python3", "-c", train], "workspace": "proj", "datasets": [{"name": "mnist"}]})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    made = await api.call("POST", "models", "digits", "versions", expect=201, body={
        "job": job["id"], "path": "model", "framework": "pytorch", "description": "a small digit classifier"})
    assert (made["version"], made["files"], made["framework"], made["metrics"]) == (
        1, 2, "pytorch", {"loss": 0.25, "accuracy": 0.93})
    assert made["datasets"] == [{"name": "mnist", "version": 1, "mount": None}], "the data it was trained on"
    assert made["spec"]["command"][0] == "python3"
    assert (await api.call("GET", "models"))["models"][0]["latest"]["description"] == "a small digit classifier"
    assert (await api.call("GET", "datasets"))["datasets"][0]["name"] == "mnist", "models and datasets apart"

    read = "import os\nprint(len(open(os.environ['JOB_MODELS_DIR'] + '/digits/weights.bin', 'rb').read()))\n"
    user = await api.submit({"command": ["python3", "-c", read], "workspace": "proj", "models": [{"name": "digits"}]})
    assert (await api.wait(user["id"]))["status"] == "succeeded"
    assert log_text(await api.logs(user["id"]), "stdout") == "1000\n"
    assert [j["id"] for j in (await api.call("GET", "models", "digits", "versions", "1"))["read_by"]] == [user["id"]]

    zipped = await api.call("GET", "models", "digits", "versions", "1", "download")
    with zipfile.ZipFile(io.BytesIO(zipped.body)) as archive:
        assert sorted(archive.namelist()) == ["config.json", "weights.bin"]
        assert archive.read("weights.bin") == b"w" * 1000
    bad = await api.call("POST", "models", "digits", "versions", body={"job": job["id"], "framework": 3}, expect=400)
    assert bad["errors"][0]["field"] == "framework"


async def test_the_magic_makes_lists_and_reads_versions(jp_serverapp, api, data, workspace):
    from test_job_kernels import execute

    kernels = jp_serverapp.kernel_manager
    kernel_id = await kernels.start_kernel(kernel_name="python3", path="proj")
    client = kernels.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        assert (await execute(client, "%load_ext jupyter_jobs"))[0] == "ok"
        status, _ = await execute(client, "made = %job dataset create mnist --folder ../data\nprint(made['files'])")
        assert status == "ok"
        status, printed = await execute(client, "%%job --dataset mnist\nimport os\n"
                                        "print(open(os.environ['JOB_DATASETS_DIR'] + '/mnist/a.txt').read())")
        assert status == "ok" and "alpha" in printed, printed
        status, printed = await execute(client, "listed = %job dataset list\n"
                                        "print([d['name'] for d in listed['datasets']])")
        assert (status, printed.strip()) == ("ok", "['mnist']")
    finally:
        client.stop_channels()
        await kernels.shutdown_kernel(kernel_id)
    assert (await api.call("GET", "datasets", "mnist"))["versions"][0]["files"] == 3
