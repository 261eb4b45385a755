"""Job outputs and workflow actions against a real server, real processes, Docker, Slurm and a
real git daemon: a dataset or model output becomes a new version when its job succeeds (and
none when it fails); an output turned into a link out of the job fails it; a volume output is
what the jobs after it read at /inputs/<key> (read-only in a container); git-checkout@v1,
create-dataset@v1 and create-model@v1 in a named workflow; bad outputs and actions named."""

from __future__ import annotations

import time

import pytest

from support import SLURM_CONF, log_text, require, slurm_problem

WRITE = ("import os, pathlib\nout = pathlib.Path(os.environ['JOB_OUTPUTS_DIR'])\n"
         "(out / 'data' / 'x.txt').write_text('features')\n(out / 'weights' / 'w.bin').write_bytes(b'\\0' * 64)\n"
         "from jupyter_jobs.metrics import log\nlog(loss=0.25)\n")
OUTPUTS = {"data": {"type": "dataset", "name": "features"},
           "weights": {"type": "model", "name": "net", "framework": "pytorch", "description": "a tiny net"}}


@pytest.fixture
def extra_config(tmp_path):
    return {"SlurmBackend": {"slurm_conf": SLURM_CONF, "shared_dir": str(tmp_path / "shared"), "poll_interval": 0.2}}


async def test_outputs_become_versions_when_the_job_succeeds_and_only_then(api, workspace):
    job = await api.submit({"command": ["python3", "-c", WRITE], "workspace": "proj", "outputs": OUTPUTS})
    done = await api.wait(job["id"])
    text = log_text(await api.logs(job["id"]))
    assert done["status"] == "succeeded", text
    assert "[jupyter_jobs] output data: kept as version 1 of dataset 'features' (1 files, 8 bytes)" in text
    (data,) = (await api.call("GET", "datasets", "features"))["versions"]
    assert (data["job"], data["source"], data["files"]) == (job["id"], {"job": job["id"], "path": "outputs/data"}, 1)
    (model,) = (await api.call("GET", "models", "net"))["versions"]
    assert (model["framework"], model["description"], model["size"]) == ("pytorch", "a tiny net", 64)
    assert model["metrics"] == {"loss": 0.25} and model["spec"]["outputs"]["weights"]["name"] == "net"

    failing = await api.submit({"command": ["python3", "-c", WRITE + "raise SystemExit(3)"], "workspace": "proj",
                                "outputs": OUTPUTS})
    assert (await api.wait(failing["id"]))["status"] == "failed"
    assert len((await api.call("GET", "datasets", "features"))["versions"]) == 1, "a failed job makes no version"


async def test_an_output_turned_into_a_link_out_of_the_job_fails_it(api, workspace, tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("host file")
    code = (f"import os, shutil\nout = os.path.join(os.environ['JOB_OUTPUTS_DIR'], 'data')\nshutil.rmtree(out)\n"
            f"os.symlink({str(tmp_path / 'secret')!r}, out)\n")
    job = await api.submit({"command": ["python3", "-c", code], "workspace": "proj",
                            "outputs": {"data": {"type": "dataset", "name": "stolen"}}})
    done = await api.wait(job["id"])
    assert (done["status"], done["reason"]) == ("failed", "output"), done
    assert done["message"].startswith("output data: ") and "not a file or folder" in done["message"]
    await api.call("GET", "datasets", "stolen", expect=404)


async def test_a_container_writes_its_outputs_at_slash_outputs_and_reads_a_volume_read_only(
        api, workspace, docker_client):
    spec = """\
defaults: {backend: docker, image: jupyter-jobs/busybox:test}
jobs:
  make:
    command: sh -c 'echo $JOB_OUTPUTS_DIR; echo vol > /outputs/vol/v.txt; echo data > /outputs/data/d.txt'
    outputs: {vol: {type: volume}, data: {type: dataset, name: made-in-docker}}
  read:
    needs: [make]
    command: sh -c 'cat /inputs/vol/v.txt; touch /inputs/vol/new 2>/dev/null || echo read-only'
"""
    run = await api.call("POST", "workflows", body={"spec": spec, "workspace": "proj"}, expect=201)
    jobs = {j["name"]: j["job_id"] for j in run["jobs"]}
    for name in ("make", "read"):
        done = await api.wait(jobs[name], timeout=90)
        assert done["status"] == "succeeded", (name, log_text(await api.logs(jobs[name])))
    assert log_text(await api.logs(jobs["make"]), "stdout") == "/outputs\n"
    assert log_text(await api.logs(jobs["read"]), "stdout") == "vol\nread-only\n"
    (made,) = (await api.call("GET", "datasets", "made-in-docker"))["versions"]
    assert (made["job"], made["files"]) == (jobs["make"], 1)


async def test_a_slurm_jobs_output_becomes_a_version(api, workspace):
    require("slurm", slurm_problem())
    job = await api.submit({"backend": "slurm", "command": "sh -c 'echo on-a-node > $JOB_OUTPUTS_DIR/data/n.txt'",
                            "workspace": "proj", "outputs": {"data": {"type": "dataset", "name": "from-slurm"}}})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "succeeded", log_text(await api.logs(job["id"]))
    (made,) = (await api.call("GET", "datasets", "from-slurm"))["versions"]
    assert (made["job"], made["files"], made["size"]) == (job["id"], 1, len("on-a-node\n"))


ACTIONS = """\
inputs: {dataset: {type: string, default: feats}}
jobs:
  code: {uses: git-checkout@v1, with: {url: "URL", ref: v1}}
  prep:
    needs: [code]
    command: >-
      sh -c 'cp $JOB_INPUTS_DIR/code/version.txt $JOB_OUTPUTS_DIR/vol/;
      mkdir $JOB_ARTIFACTS_DIR/feat; echo f > $JOB_ARTIFACTS_DIR/feat/f.txt'
    outputs: {vol: {type: volume}}
  use: {needs: [prep], command: cat $JOB_INPUTS_DIR/vol/version.txt}
  register:
    needs: [prep]
    uses: create-dataset@v1
    with: {name: "${{ inputs.dataset }}", path: prep/feat}
  model:
    needs: [prep]
    uses: create-model@v1
    with: {name: net, path: prep/feat/f.txt, framework: onnx}
"""


async def test_actions_check_out_git_pass_a_volume_and_make_a_dataset_and_a_model(api, workspace, repo):
    await api.call("PUT", "workflow-definitions", "pipeline",
                   body={"spec": ACTIONS.replace("URL", repo["url"]), "workspace": "proj"}, expect=201)
    run = await api.call("POST", "workflow-definitions", "pipeline", "runs", body={"inputs": {"dataset": "mine"}},
                         expect=201)
    jobs = {j["name"]: j["job_id"] for j in run["jobs"]}
    for name, job_id in jobs.items():
        done = await api.wait(job_id, timeout=60)
        assert done["status"] == "succeeded", (name, log_text(await api.logs(job_id)))
    code = await api.job(jobs["code"])
    assert code["spec"]["git"]["commit"] == repo["v1"], "the ref resolved at submit and recorded"
    assert log_text(await api.logs(jobs["use"]), "stdout") == "one\n", "the volume of the job it needs, at v1"
    (data,) = (await api.call("GET", "datasets", "mine"))["versions"]
    assert (data["job"], data["files"]) == (jobs["register"], 1)
    (model,) = (await api.call("GET", "models", "net"))["versions"]
    assert (model["job"], model["framework"], model["files"], model["size"]) == (jobs["model"], "onnx", 1, 2)


@pytest.mark.parametrize("spec, field, words", [
    ("jobs: {a: {command: 'true', outputs: {a: {type: volume}}}}", "jobs.a.outputs.a", "/inputs/a holds job"),
    ("jobs: {a: {command: 'true', matrix: {x: [1, 2]}, outputs: {v: {type: volume}}}}", "jobs.a.outputs.v",
     "matrix job"),
    ("jobs: {a: {command: 'true', outputs: {v: {type: volume}}}, b: {command: 'true', outputs: {v: {type: volume}}}}",
     "jobs.b.outputs.v", "job 'a' makes a volume 'v' too"),
    ("jobs: {a: {command: 'true', outputs: {d: {type: dataset}}}}", "jobs.a.outputs.d", "names the dataset"),
    ("jobs: {a: {uses: create-dataset@v1, with: {path: b}}}", "jobs.a.uses", "takes with.name"),
    ("jobs: {a: {uses: create-model@v1, with: {name: m, path: ../etc}}}", "jobs.a.with.path", "under /inputs"),
    ("jobs: {a: {uses: git-checkout@v1, with: {ref: main}}}", "jobs.a.uses", "takes with.url"),
    ("jobs: {a: {uses: git-checkout@v1, with: {url: x, depth: 1}}}", "jobs.a.with.depth", "takes ref, url"),
])
async def test_bad_outputs_and_actions_are_named(api, workspace, spec, field, words):
    reply = await api.call("PUT", "workflow-definitions", "bad", body={"spec": spec}, expect=400)
    assert any(e["field"] == field and words in e["message"] for e in reply["errors"]), reply


async def test_a_jobs_bad_outputs_are_named(api, workspace):
    for outputs, field in [({"data": {"type": "dataset", "name": "Bad Name"}}, "outputs.data"),
                           ({"1st": {"type": "volume"}}, "outputs"),
                           ({"v": {"type": "tape"}}, "outputs.v.type")]:
        reply = await api.submit({"command": "true", "workspace": "proj", "outputs": outputs}, expect=400)
        assert reply["errors"][0]["field"] == field, reply


def test_an_output_is_kept_when_its_job_ends_while_the_server_is_down(tmp_path):
    """The job ends while no server watches; the next server records it and keeps its output once."""
    from support import ServerProcess

    (tmp_path / "root" / "proj").mkdir(parents=True)
    gate = tmp_path / "gate"
    server = ServerProcess(tmp_path / "root", tmp_path / "data").start()
    try:
        job = server.request("POST", "/jupyter-jobs/jobs", {
            "command": f"while [ ! -e {gate} ]; do sleep 0.05; done; echo kept > $JOB_OUTPUTS_DIR/data/k.txt",
            "workspace": "proj", "outputs": {"data": {"type": "dataset", "name": "late"}}})
        server.wait(job["id"], {"running"})
    finally:
        server.stop()
    gate.touch()  # it finishes with nobody watching
    time.sleep(0.5)
    server.start()
    try:
        assert server.wait(job["id"])["status"] == "succeeded"
        (made,) = server.request("GET", "/jupyter-jobs/datasets/late")["versions"]
        assert (made["job"], made["files"]) == (job["id"], 1)
        server.stop()
        server.start()  # recorded already: nothing is kept twice
        assert len(server.request("GET", "/jupyter-jobs/datasets/late")["versions"]) == 1
    finally:
        server.stop()
