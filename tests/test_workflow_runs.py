"""Workflow runs against a real server and the local backend: a DAG with a matrix whose last
job reads every input, outputs passed as strings, failures that skip, continue_on_error,
cancel, rerun of what failed only, a restart mid-run, and validation errors."""

from __future__ import annotations

import signal
import time

from support import log_text

DAG = """\
name: pipeline
defaults:
  backend: local
jobs:
  prepare:
    command: >-
      echo data > "$JOB_ARTIFACTS_DIR/data.txt" &&
      echo '{"rows": "3", "flag": "on"}' > "$JOB_OUTPUTS_FILE"
  train:
    needs: [prepare]
    matrix: {lr: [0.1, 0.01], batch: [32, 64]}
    command: >-
      test "$(cat "$JOB_INPUTS_DIR/prepare/data.txt")" = data &&
      echo "lr=${{ matrix.lr }} batch=$MATRIX_BATCH rows=${{ needs.prepare.outputs.rows }}"
      > "$JOB_ARTIFACTS_DIR/result.txt"
  report:
    needs: train
    command: cat "$JOB_INPUTS_DIR"/train/*/result.txt | sort
"""


async def wait_run(api, run_id, statuses=("succeeded", "failed", "cancelled"), timeout=60):
    deadline = time.monotonic() + timeout
    while (run := await api.call("GET", "workflows", run_id))["status"] not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run['jobs']}"
        import asyncio

        await asyncio.sleep(0.1)
    return run


async def test_a_dag_with_a_matrix_passes_inputs_and_outputs(api, workspace):
    run = await api.call("POST", "workflows", body={"spec": DAG, "workspace": "proj"}, expect=201)
    assert run["status"] in ("queued", "running") and len(run["jobs"]) == 6
    assert [j["key"] for j in run["jobs"]][:2] == ["prepare", "train[lr=0.1,batch=32]"]
    assert run["jobs"][1]["matrix"] == {"lr": "0.1", "batch": "32"} and run["jobs"][1]["needs"] == ["prepare"]
    done = await wait_run(api, run["id"])
    assert done["status"] == "succeeded", done["jobs"]
    report = done["jobs"][-1]
    assert log_text(await api.logs(report["job_id"])) == "".join(
        f"lr={lr} batch={b} rows=3\n" for lr, b in [("0.01", "32"), ("0.01", "64"), ("0.1", "32"), ("0.1", "64")])
    listed = await api.call("GET", "jobs", params={"workflow": run["id"]})
    assert sorted(j["node"] for j in listed["jobs"]) == sorted(j["key"] for j in run["jobs"])
    assert all(j["workflow"] == run["id"] for j in listed["jobs"])
    runs = await api.call("GET", "workflows")
    assert runs["workflows"][0]["id"] == run["id"] and runs["workflows"][0]["name"] == "pipeline"


FLAKY = """\
jobs:
  first: {command: echo one}
  middle:
    needs: first
    command: test -e "$JOB_STORAGE_DIR/ready"
  last: {needs: middle, command: echo last}
  beside: {needs: first, command: echo beside}
"""


async def test_a_failure_skips_what_needs_it_and_a_rerun_runs_only_that(api, workspace, jobs_data):
    run = await api.call("POST", "workflows", body={"spec": FLAKY, "workspace": "proj"}, expect=201)
    done = await wait_run(api, run["id"])
    states = {j["key"]: j["status"] for j in done["jobs"]}
    assert done["status"] == "failed"
    assert states == {"first": "succeeded", "middle": "failed", "last": "skipped", "beside": "succeeded"}
    assert done["counts"] == {"succeeded": 2, "failed": 1, "skipped": 1}
    skipped = await api.job(next(j["job_id"] for j in done["jobs"] if j["key"] == "last"))
    assert "middle failed" in skipped["message"]
    (jobs_data / "storage").mkdir(exist_ok=True)
    (jobs_data / "storage" / "ready").write_text("yes")
    again = await api.call("POST", "workflows", run["id"], "rerun", body={})
    kept = {j["key"]: j["job_id"] for j in done["jobs"]}
    assert {j["key"]: j["job_id"] for j in again["jobs"]}["first"] == kept["first"]  # not run again
    final = await wait_run(api, run["id"])
    assert final["status"] == "succeeded", final["jobs"]
    fresh = {j["key"]: j["job_id"] for j in final["jobs"]}
    assert fresh["middle"] != kept["middle"] and fresh["last"] != kept["last"] and fresh["beside"] == kept["beside"]
    await api.call("POST", "workflows", run["id"], "rerun", body={}, expect=409)  # nothing left to rerun
    listed = (await api.call("GET", "workflows"))["workflows"][0]  # counts the newest job of each node
    assert listed["id"] == run["id"] and listed["counts"] == final["counts"] == {"succeeded": 4}


async def test_continue_on_error_lets_dependents_run(api, workspace):
    spec = {"jobs": {"try": {"command": "exit 3", "continue_on_error": True},
                     "after": {"needs": "try", "command": "echo went on"}}}
    run = await api.call("POST", "workflows", body={"spec": spec, "workspace": "proj"}, expect=201)
    done = await wait_run(api, run["id"])
    assert done["status"] == "succeeded" and [j["status"] for j in done["jobs"]] == ["failed", "succeeded"]


async def test_cancel_stops_the_whole_run(api, workspace):
    spec = {"jobs": {"long": {"command": "sleep 60"}, "next": {"needs": "long", "command": "true"}}}
    run = await api.call("POST", "workflows", body={"spec": spec, "workspace": "proj"}, expect=201)
    await api.wait(run["jobs"][0]["job_id"], {"running"})
    cancelled = await api.call("POST", "workflows", run["id"], "cancel", body={})
    done = await wait_run(api, cancelled["id"])
    assert done["status"] == "cancelled" and [j["status"] for j in done["jobs"]] == ["cancelled", "cancelled"]
    await api.call("POST", "workflows", run["id"], "cancel", body={}, expect=409)


async def test_a_bad_workflow_is_refused_whole(api, workspace):
    bad = "jobs:\n  a: {command: echo, needs: [zz]}\n  b: {command: 'echo ${{ matrix.q }}', colour: red}\n"
    reply = await api.call("POST", "workflows", body={"spec": bad, "workspace": "proj"}, expect=400)
    fields = {e["field"]: e["message"] for e in reply["errors"]}
    assert fields["jobs.a.needs"] == "no job 'zz' in this workflow (line 2)"
    assert fields["jobs.b.colour"].startswith("unknown field") and "matrix.q" in fields["jobs.b"]
    reply = await api.call("POST", "workflows", body={"spec": {"jobs": {"a": {"command": "true", "backend": "nope"}}},
                                                      "workspace": "proj"}, expect=400)
    assert reply["errors"][0]["field"] == "jobs.a.backend"
    await api.call("POST", "workflows", body={"spec": DAG, "workspace": "no/such"}, expect=400)
    await api.call("POST", "workflows", body={"workspace": "proj"}, expect=400)
    await api.call("GET", "workflows", "wnope", expect=404)


def test_a_run_goes_on_after_a_restart(server_process):
    server = server_process().start()
    (server.root / "proj").mkdir()
    spec = {"jobs": {"slow": {"command": "sleep 2; echo slow"}, "then": {"needs": "slow", "command": "echo then"}}}
    run = server.request("POST", "/jupyter-jobs/workflows", {"spec": spec, "workspace": "proj"})
    time.sleep(0.5)
    server.stop(signal.SIGTERM)
    time.sleep(2.5)  # "slow" ends while no server watches
    server.start()
    deadline = time.monotonic() + 30
    while (state := server.request("GET", f"/jupyter-jobs/workflows/{run['id']}"))["status"] != "succeeded":
        assert time.monotonic() < deadline and state["status"] not in ("failed", "cancelled"), state
        time.sleep(0.2)
    assert [j["status"] for j in state["jobs"]] == ["succeeded", "succeeded"]


DOCKER_DAG = """\
defaults:
  backend: docker
  image: jupyter-jobs/busybox:test
jobs:
  prepare:
    command: >-
      echo data > /artifacts/data.txt && echo '{"rows": "3"}' > "$JOB_OUTPUTS_FILE"
  train:
    needs: prepare
    matrix: {lr: [1, 2], batch: [8, 16]}
    command: >-
      test "$(cat /inputs/prepare/data.txt)" = data && ! touch /inputs/prepare/x 2>/dev/null &&
      echo "lr=${{ matrix.lr }} batch=$MATRIX_BATCH rows=${{ needs.prepare.outputs.rows }}" > /artifacts/result.txt
  report:
    needs: train
    command: cat "$JOB_INPUTS_DIR"/train/*/result.txt | sort
"""


async def test_a_dag_with_a_matrix_in_containers(api, workspace, docker_client):
    """Inputs are read-only mounts under /inputs; outputs pass as strings."""
    run = await api.call("POST", "workflows", body={"spec": DOCKER_DAG, "workspace": "proj"}, expect=201)
    done = await wait_run(api, run["id"], timeout=120)
    assert done["status"] == "succeeded", [(j["key"], j["status"]) for j in done["jobs"]]
    assert log_text(await api.logs(done["jobs"][-1]["job_id"])) == "".join(
        f"lr={lr} batch={b} rows=3\n" for lr, b in [("1", "16"), ("1", "8"), ("2", "16"), ("2", "8")])


async def test_max_parallel_limits_a_matrix(api, workspace):
    import asyncio

    spec = {"jobs": {"sweep": {"command": "sleep 0.6", "matrix": {"i": [1, 2, 3, 4, 5]}, "max_parallel": 2}}}
    run = await api.call("POST", "workflows", body={"spec": spec, "workspace": "proj"}, expect=201)
    most, said = 0, set()
    while (state := await api.call("GET", "workflows", run["id"]))["status"] not in ("succeeded", "failed"):
        most = max(most, sum(j["status"] == "running" for j in state["jobs"]))
        for j in state["jobs"]:
            if j["status"] == "queued":
                said.add((await api.job(j["job_id"]))["waiting"])
        await asyncio.sleep(0.05)
    assert state["status"] == "succeeded" and most == 2
    assert any(w and w.startswith("max_parallel: 2 of 2 of sweep running") for w in said), said


async def test_jobs_carry_their_times_and_a_rerun_says_what_it_started(api, workspace, jobs_data):
    run = await api.call("POST", "workflows", body={"spec": FLAKY, "workspace": "proj"}, expect=201)
    done = await wait_run(api, run["id"])
    times = {j["key"]: (j["started_at"], j["finished_at"]) for j in done["jobs"]}
    assert all(times[k][0] and times[k][1] and times[k][0] <= times[k][1] for k in ("first", "middle", "beside"))
    assert times["last"][0] is None  # skipped: it never started
    assert done["started"] is None and done["best"] is None
    (jobs_data / "storage").mkdir(exist_ok=True)
    (jobs_data / "storage" / "ready").write_text("yes")
    again = await api.call("POST", "workflows", run["id"], "rerun", body={})
    assert again["started"] == ["middle", "last"]  # what the rerun started, in the run's order
    assert {j["key"]: j["started_at"] for j in again["jobs"]}["first"] == times["first"][0]  # kept
