"""Named workflows against a real server: spec versions with history, runs with typed inputs
(strings into any field, datasets read at /inputs/<name> in containers), a run again with some
inputs changed, bad input named, and a restart keeping it all."""

from __future__ import annotations

from support import log_text

SPEC = """\
name: train
inputs:
  lr: {type: string, default: "0.1"}
  tag: {type: string}
  data: {type: dataset, default: mnist}
jobs:
  train:
    command: >-
      sh -c 'echo lr=${{ inputs.lr }} tag=${{ inputs.tag }} data=${{ inputs.data }};
      cat $JOB_DATASETS_DIR/mnist/a.txt'
"""


async def mnist(api, jp_root_dir):
    """A dataset `mnist`, version 1: a.txt holding 'alpha'."""
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "a.txt").write_text("alpha")
    await api.call("POST", "datasets", "mnist", "versions", body={"folder": "data"}, expect=201)


async def _train_log(api, run: dict) -> str:
    done = await api.call("GET", "workflows", run["id"])
    (job,) = done["jobs"]
    await api.wait(job["job_id"])
    return log_text(await api.logs(job["job_id"]), "stdout")


async def test_a_named_workflow_keeps_versions_and_runs_with_inputs(api, workspace, jp_root_dir):
    await mnist(api, jp_root_dir)
    first = await api.call("PUT", "workflow-definitions", "train", body={"spec": SPEC, "workspace": "proj"},
                           expect=201)
    assert (first["name"], first["version"]) == ("train", 1)
    second = await api.call("PUT", "workflow-definitions", "train", expect=201,
                            body={"spec": SPEC.replace('"0.1"', '"0.01"'), "workspace": "proj"})
    assert second["version"] == 2
    history = await api.call("GET", "workflow-definitions", "train")
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert (await api.call("GET", "workflow-definitions"))["workflows"][0]["versions"] == 2

    run = await api.call("POST", "workflow-definitions", "train", "runs", body={"inputs": {"tag": "a"}}, expect=201)
    assert (run["definition"], run["definition_version"]) == ("train", 2)
    assert run["inputs"] == {"lr": "0.01", "tag": "a", "data": "mnist"}, "defaults filled in"
    assert await _train_log(api, run) == "lr=0.01 tag=a data=mnist\nalpha"
    job = await api.job((await api.call("GET", "workflows", run["id"]))["jobs"][0]["job_id"])
    assert job["spec"]["datasets"] == [{"name": "mnist", "version": 1, "mount": "/inputs/data"}]

    old = await api.call("POST", "workflow-definitions", "train", "runs", expect=201,
                         body={"version": 1, "inputs": {"tag": "b", "lr": 3}})
    assert await _train_log(api, old) == "lr=3 tag=b data=mnist\nalpha"
    again = await api.call("POST", "workflow-definitions", "train", "runs", expect=201,
                           body={"rerun": old["id"], "inputs": {"tag": "c"}})
    assert (again["definition_version"], again["inputs"]["lr"], again["inputs"]["tag"]) == (1, 3, "c")
    runs = (await api.call("GET", "workflow-definitions", "train", "runs"))["workflows"]
    assert [r["id"] for r in runs] == [again["id"], old["id"], run["id"]]


async def test_a_run_can_bring_a_new_spec_which_becomes_the_next_version(api, workspace, jp_root_dir):
    await mnist(api, jp_root_dir)
    await api.call("PUT", "workflow-definitions", "train", body={"spec": SPEC, "workspace": "proj"}, expect=201)
    spec = SPEC.replace("echo lr=", "echo new lr=")
    run = await api.call("POST", "workflow-definitions", "train", "runs", expect=201,
                         body={"spec": spec, "inputs": {"tag": "x"}, "workspace": "proj"})
    assert run["definition_version"] == 2 and (await _train_log(api, run)).startswith("new lr=0.1 tag=x")


async def test_bad_input_is_named(api, workspace, jp_root_dir):
    await mnist(api, jp_root_dir)
    await api.call("PUT", "workflow-definitions", "train", body={"spec": SPEC, "workspace": "proj"}, expect=201)
    cases = [
        ({"inputs": {}}, "inputs.tag", "required"),
        ({"inputs": {"tag": "a", "colour": "red"}}, "inputs.colour", "not an input"),
        ({"inputs": {"tag": "a", "data": "../etc"}}, "inputs.data", "NAME or NAME:VERSION"),
        ({"inputs": {"tag": "a", "data": "nope"}}, "jobs.train.datasets.0.name", "no dataset"),
        ({"inputs": {"tag": ["a"]}}, "inputs.tag", "plain value"),
        ({"version": 9, "inputs": {"tag": "a"}}, "version", "no version 9"),
        ({"rerun": "w123", "inputs": {}}, "rerun", "not a run"),
        ({"inputs": {"tag": "a"}, "colour": 1}, "colour", ""),
    ]
    for body, field, words in cases:
        reply = await api.call("POST", "workflow-definitions", "train", "runs", body=body, expect=400)
        assert any(e["field"] == field and words in e["message"] for e in reply["errors"]), (body, reply)
    await api.call("POST", "workflow-definitions", "nowhere", "runs", body={}, expect=404)
    for spec, field in [("jobs: {a: {command: 'echo ${{ inputs.nope }}'}}", "jobs.a"),
                        ("inputs: {x: {type: volume}}\njobs: {a: {command: 'true'}}", "inputs.x"),
                        ("inputs: {a: {type: dataset}}\njobs: {a: {command: 'true'}}", "inputs.a")]:
        reply = await api.call("PUT", "workflow-definitions", "bad", body={"spec": spec}, expect=400)
        assert reply["errors"][0]["field"].startswith(field), (spec, reply)
    assert (await api.call("PUT", "workflow-definitions", "Bad Name", body={"spec": SPEC},
                           expect=400))["errors"][0]["field"] == "name"


def test_named_workflows_survive_a_restart(tmp_path):
    from support import ServerProcess

    (tmp_path / "root" / "w").mkdir(parents=True)
    spec = "inputs: {who: {type: string}}\njobs: {hello: {command: 'echo hello ${{ inputs.who }}'}}\n"
    server = ServerProcess(tmp_path / "root", tmp_path / "data").start()
    try:
        server.request("PUT", "/jupyter-jobs/workflow-definitions/hello", {"spec": spec, "workspace": "w"})
    finally:
        server.stop()
    server.start()
    try:
        run = server.request("POST", "/jupyter-jobs/workflow-definitions/hello/runs", {"inputs": {"who": "ada"}})
        job_id = run["jobs"][0]["job_id"]
        assert server.wait(job_id)["status"] == "succeeded"
        assert log_text(server.logs(job_id), "stdout") == "hello ada\n"
    finally:
        server.stop()


async def test_container_action_and_unknown_actions(api, workspace, docker_client):
    spec = ("inputs: {word: {type: string, default: hi}}\njobs:\n  say:\n    backend: docker\n    uses: container@v1\n"
            "    with: {image: jupyter-jobs/busybox:test, args: [echo, '${{ inputs.word }}']}\n")
    await api.call("PUT", "workflow-definitions", "say", body={"spec": spec, "workspace": "proj"}, expect=201)
    run = await api.call("POST", "workflow-definitions", "say", "runs", body={}, expect=201)
    job = await api.wait(run["jobs"][0]["job_id"], timeout=60)
    assert (job["status"], job["spec"]["image"]) == ("succeeded", "jupyter-jobs/busybox:test")
    assert log_text(await api.logs(job["id"]), "stdout") == "hi\n"
    for bad, field, words in [("jobs: {a: {uses: create-coffee@v1}}", "jobs.a.uses", "unknown action"),
                              ("jobs: {a: {uses: container@v1, with: {image: x, colour: red}}}", "jobs.a.with.colour",
                               "takes args, image"),
                              ("jobs: {a: {command: 'true', with: {image: x}}}", "jobs.a.with", "name the action")]:
        reply = await api.call("PUT", "workflow-definitions", "bad", body={"spec": bad}, expect=400)
        assert any(e["field"] == field and words in e["message"] for e in reply["errors"]), (bad, reply)
