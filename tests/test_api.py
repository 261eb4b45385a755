"""The REST API end to end: a real Jupyter server, the real local backend, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from support import log_text
from jupyter_jobs.server.openapi import render


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def py(code: str) -> list[str]:
    return ["python", "-c", code]


async def test_backends(api):
    reply = await api.call("GET", "backends")
    local = {b["name"]: b for b in reply["backends"]}["local"]
    assert local["available"] and local["default"] and local["capabilities"]["artifacts"]
    assert reply["gpus"] == []


async def test_job_runs_to_success(api, workspace):
    job = await api.submit({"command": "python hello.py", "workspace": "proj", "name": "hi", "tags": ["t"]})
    assert job["status"] in ("queued", "running") and job["project"] == "proj" and job["name"] == "hi"
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks) == f"hello from {job['id']}\n"
    assert chunks[-1] == {"status": "succeeded", "exit_code": 0, "reason": None, "message": None}
    done = await api.job(job["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0 and done["reason"] is None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    assert [e["status"] for e in done["events"]] == ["queued", "running", "succeeded"]


async def test_environment_streams_and_private_cwd(api, workspace):
    code = (
        "import os, sys\n"
        "print('out', os.environ['JOB_ID'], os.environ['EPOCHS'], os.environ['API_TOKEN'])\n"
        "print('err line', file=sys.stderr)\n"
        "print('cwd', os.getcwd())\n"
        "print('dirs', os.path.isdir(os.environ['JOB_ARTIFACTS_DIR']), os.path.isdir(os.environ['JOB_STORAGE_DIR']))\n"
        "print('token', 'JUPYTER_TOKEN' in os.environ)\n"
    )
    job = await api.submit({"command": py(code), "workspace": "proj", "env": {"EPOCHS": "3", "API_TOKEN": "s3"}})
    assert job["spec"]["env"] == {"EPOCHS": "3", "API_TOKEN": "********"}
    chunks = await api.logs(job["id"], follow=True)
    out, err = log_text(chunks, "stdout"), log_text(chunks, "stderr")
    assert f"out {job['id']} 3 s3\n" in out and "dirs True True" in out and "token False" in out
    assert err == "err line\n"
    cwd = out.split("cwd ")[1].split("\n")[0]
    assert Path(cwd).name == "workspace" and Path(cwd) != workspace and (Path(cwd) / "hello.py").exists()


async def test_nonzero_exit_fails_with_reason(api, workspace):
    job = await api.submit({"command": "echo bye; exit 3", "workspace": "proj"})
    done = await api.wait(job["id"])
    assert done["status"] == "failed" and done["reason"] == "exit_code" and done["exit_code"] == 3
    assert "3" in done["message"]


async def test_command_not_found(api, workspace):
    job = await api.submit({"command": ["no-such-program-xyz"], "workspace": "proj"})
    chunks = await api.logs(job["id"], follow=True)
    assert chunks[-1]["status"] == "failed" and chunks[-1]["exit_code"] == 127
    assert "no-such-program-xyz" in log_text(chunks, "stderr")


async def test_edits_after_submit_never_reach_the_job(api, workspace):
    (workspace / "data.txt").write_text("original")
    job = await api.submit({"command": "sleep 0.5; cat data.txt", "workspace": "proj"})
    (workspace / "data.txt").write_text("edited")
    assert log_text(await api.logs(job["id"], follow=True)) == "original"
    rerun = await api.call("POST", "jobs", job["id"], "rerun", expect=201)
    assert rerun["id"] != job["id"] and rerun["spec"] == job["spec"] and rerun["snapshot"] != job["snapshot"]
    assert log_text(await api.logs(rerun["id"], follow=True)) == "edited"


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"command": ""}, "command"),
        ({"command": "true", "backend": "nope"}, "backend"),
        ({"command": "true", "resources": {"gpus": 1}}, "resources.gpus"),
        ({"command": "true", "workspace": "missing"}, "workspace"),
        ({"command": "true", "workspace": "../"}, "workspace"),
        ({"command": "true", "timeout": -5}, "timeout"),
        ({"command": "true", "resources": {"memory": "much"}}, "resources.memory"),
        ({"command": "true", "colour": "blue"}, "colour"),
    ],
)
async def test_bad_specs_are_400_naming_the_field(api, workspace, spec, field):
    reply = await api.submit(spec, expect=400)
    assert field in {e["field"] for e in reply["errors"]}
    assert field.split(".")[-1] in reply["message"] or field in reply["message"]
    assert "Traceback" not in json.dumps(reply)


async def test_invalid_json_is_400(api):
    reply = await api.submit("{not json", expect=400)
    assert reply["errors"][0]["field"] == "body"


async def test_workspace_symlink_out_of_root_is_refused(api, jp_root_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, jp_root_dir / "escape")
    reply = await api.submit({"command": "true", "workspace": "escape"}, expect=400)
    assert reply["errors"][0]["field"] == "workspace" and "outside" in reply["message"]


async def test_size_cap_is_a_400(api, workspace, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.snapshots.max_bytes = 10
    reply = await api.submit({"command": "true", "workspace": "proj"}, expect=400)
    assert reply["errors"][0]["field"] == "workspace" and "hello.py" in reply["message"]


@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("POST", "/rerun"), ("GET", "/logs"),
    ("GET", "/artifacts"), ("GET", "/artifacts/x.txt"),
])
async def test_unknown_job_is_404(api, method, suffix):
    reply = await api.call(method, *f"jobs/000000000000{suffix}".split("/"), expect=404)
    assert "000000000000" in reply["message"]


async def test_cancel_running_job(api, workspace):
    job = await api.submit({"command": py("import os,time; print(os.getpid(), flush=True); time.sleep(60)"),
                            "workspace": "proj"})
    await api.wait(job["id"], {"running"})
    await api.wait_for_output(job["id"], "\n")
    pid = int(log_text(await api.logs(job["id"])).split()[0])
    assert alive(pid)
    cancelled = await api.call("POST", "jobs", job["id"], "cancel")
    assert cancelled["status"] == "cancelled"
    assert not alive(pid)
    again = await api.call("POST", "jobs", job["id"], "cancel", expect=409)
    assert "cancelled" in again["message"]
    chunks = await api.logs(job["id"], follow=True)
    assert chunks[-1]["status"] == "cancelled"


@pytest.mark.parametrize("contained", [True, False], ids=["cgroup", "no-cgroup"])
async def test_cancel_kills_a_job_that_ignores_sigterm(api, workspace, jp_serverapp, contained):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].cgroups = contained  # without one, the supervisor does the kill
    code = ("import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print(os.getpid(), flush=True)\ntime.sleep(60)\n")
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait_for_output(job["id"], "\n")
    pid = int(log_text(await api.logs(job["id"])).split()[0])
    started = time.monotonic()
    await api.call("POST", "jobs", job["id"], "cancel")
    done = await api.wait(job["id"])
    assert done["status"] == "cancelled" and not alive(pid)
    assert 1.5 < time.monotonic() - started < 10  # SIGKILL after the 2 s grace


async def test_timeout(api, workspace):
    job = await api.submit({"command": "echo start; sleep 30", "workspace": "proj", "timeout": 1})
    done = await api.wait(job["id"], timeout=15)
    assert done["status"] == "failed" and done["reason"] == "timeout" and "1 s" in done["message"]
    assert log_text(await api.logs(job["id"]), "stdout") == "start\n"


async def test_cancel_queued_job(api, workspace, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].max_running = 1
    first = await api.submit({"command": "sleep 30", "workspace": "proj"})
    second = await api.submit({"command": "echo never", "workspace": "proj"})
    await api.wait(first["id"], {"running"})
    assert (await api.job(second["id"]))["status"] == "queued"
    cancelled = await api.call("POST", "jobs", second["id"], "cancel")
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    await api.call("POST", "jobs", first["id"], "cancel")
    assert log_text(await api.logs(second["id"])) == ""


async def test_artifacts(api, workspace):
    code = (
        "import os\nd = os.environ['JOB_ARTIFACTS_DIR']\n"
        "os.makedirs(d + '/plots', exist_ok=True)\n"
        "open(d + '/model.bin', 'wb').write(bytes(range(256)) * 10)\n"
        "open(d + '/plots/loss.csv', 'w').write('epoch,loss\\n1,0.5\\n')\n"
        "os.symlink('/etc/passwd', d + '/passwd')\n"
    )
    job = await api.submit({"command": py(code), "workspace": "proj"})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    reply = await api.call("GET", "jobs", job["id"], "artifacts")
    listed = reply["artifacts"]
    assert [(a["path"], a["size"]) for a in listed] == [("model.bin", 2560), ("plots/loss.csv", 17)]
    assert reply["folder"] is None  # the jobs are kept outside the server's root
    resp = await api.call("GET", "jobs", job["id"], "artifacts", "plots", "loss.csv")
    assert resp.body == b"epoch,loss\n1,0.5\n" and "attachment" in resp.headers["Content-Disposition"]
    resp = await api.call("GET", "jobs", job["id"], "artifacts", "model.bin")
    assert resp.body == bytes(range(256)) * 10
    for escape in ["passwd", "..%2Flog", "%2E%2E/%2E%2E/jobs.db", "plots/..%2F..%2Fstdout", "%2Fetc%2Fpasswd"]:
        await api.call("GET", "jobs", job["id"], "artifacts", escape, expect=404)


async def test_artifacts_listed_while_running(api, workspace):
    code = ("import os, time\nopen(os.environ['JOB_ARTIFACTS_DIR'] + '/partial.txt', 'w').write('x')\n"
            "print('written', flush=True)\ntime.sleep(60)\n")
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait_for_output(job["id"], "written")
    listed = (await api.call("GET", "jobs", job["id"], "artifacts"))["artifacts"]
    assert [a["path"] for a in listed] == ["partial.txt"]
    await api.call("POST", "jobs", job["id"], "cancel")


async def test_storage_persists_across_jobs(api, workspace):
    first = await api.submit({"command": 'echo 42 > "$JOB_STORAGE_DIR/answer"', "workspace": "proj"})
    assert (await api.wait(first["id"]))["status"] == "succeeded"
    second = await api.submit({"command": 'cat "$JOB_STORAGE_DIR/answer"', "workspace": "proj"})
    assert log_text(await api.logs(second["id"], follow=True)) == "42\n"


async def test_log_offsets_resume_without_loss_or_duplicates(api, workspace):
    code = ("import sys, time\nfor i in range(40):\n"
            "    print(f'out {i} é', flush=True)\n    print(f'err {i}', file=sys.stderr, flush=True)\n"
            "    time.sleep(0.01)\n")
    job = await api.submit({"command": py(code), "workspace": "proj"})
    # follow from the start while it runs
    followed = await api.logs(job["id"], follow=True)
    full = [c for c in followed if "text" in c]
    assert followed[-1]["status"] == "succeeded"
    assert log_text(full, "stdout") == "".join(f"out {i} é\n" for i in range(40))
    assert log_text(full, "stderr") == "".join(f"err {i}\n" for i in range(40))
    # chunks tile the log exactly
    for a, b in zip(full, full[1:]):
        assert a["next"] == b["offset"] == a["offset"] + len(a["text"].encode())
    # resuming from every chunk boundary gives exactly the rest
    total = "".join(c["text"] for c in full)
    for chunk in full[:: max(1, len(full) // 10)]:
        rest = await api.logs(job["id"], offset=chunk["offset"], follow=True)
        assert "".join(c["text"] for c in rest if "text" in c) == total.encode()[chunk["offset"]:].decode()
    # an offset inside a multi-byte character moves to the next whole character
    inside = total.encode().index("é".encode()) + 1
    rest = await api.logs(job["id"], offset=inside)
    assert log_text(rest).startswith("\n")
    assert await api.logs(job["id"], offset=10**9) == []


async def test_follow_across_offsets_while_running(api, workspace):
    code = "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n"
    job = await api.submit({"command": py(code), "workspace": "proj"})
    await api.wait_for_output(job["id"], "tick 1")
    head = await api.logs(job["id"])  # not following: returns at once with what exists
    assert "tick 5" not in log_text(head)
    resumed = await api.logs(job["id"], offset=head[-1]["next"], follow=True)
    assert log_text(head) + log_text(resumed) == "".join(f"tick {i}\n" for i in range(6))
    assert resumed[-1]["status"] == "succeeded"


async def test_follow_is_streamed_live(api, workspace, jp_serverapp, jp_base_url, jp_auth_header):
    job = await api.submit({"command": "echo first; sleep 1.5; echo second", "workspace": "proj"})
    port = jp_serverapp.port
    url = f"http://127.0.0.1:{port}{jp_base_url}jupyter-jobs/jobs/{job['id']}/logs?follow=true"
    arrivals: list[tuple[float, bytes]] = []
    await AsyncHTTPClient().fetch(url, headers=jp_auth_header, request_timeout=30,
                                  streaming_callback=lambda data: arrivals.append((time.monotonic(), data)))
    text = b"".join(d for _, d in arrivals).decode()
    first_at = next(t for t, d in arrivals if b"first" in d)
    second_at = next(t for t, d in arrivals if b"second" in d)
    assert second_at - first_at > 1.0, "the first line must arrive before the job ends"
    assert text.strip().splitlines()[-1].startswith('{"status": "succeeded"')


async def test_submit_and_follow_in_one_request(api, workspace, jp_serverapp, jp_base_url, jp_auth_header):
    """`POST /jobs?follow=true`: the job, then its output as it comes (live), then how it ended:
    the same chunks a follow of its log gives; a bad spec is still a plain 400 naming the field."""
    url = f"http://127.0.0.1:{jp_serverapp.port}{jp_base_url}jupyter-jobs/jobs?follow=true"
    arrivals: list[tuple[float, bytes]] = []
    spec = {"command": "echo first; sleep 1.5; echo second >&2", "workspace": "proj"}
    resp = await AsyncHTTPClient().fetch(url, method="POST", body=json.dumps(spec), headers=jp_auth_header,
                                         request_timeout=30,
                                         streaming_callback=lambda data: arrivals.append((time.monotonic(), data)))
    assert resp.code == 201 and resp.headers["Content-Type"].startswith("application/x-ndjson")
    items = [json.loads(line) for line in b"".join(d for _, d in arrivals).decode().splitlines()]
    job = items[0]["job"]
    assert resp.headers["Location"].endswith("/jobs/" + job["id"]) and job["status"] == "queued"
    assert items[-1]["status"] == "succeeded" and items[-1]["exit_code"] == 0
    assert items[1:] == await api.logs(job["id"], follow=True)  # the very chunks its log holds
    assert log_text(items[1:-1], "stdout") == "first\n" and log_text(items[1:-1], "stderr") == "second\n"
    first_at = next(t for t, d in arrivals if b'"text": "first' in d)  # (the job's own line names both)
    second_at = next(t for t, d in arrivals if b'"text": "second' in d)
    assert second_at - first_at > 1.0, "the first line must arrive before the job ends"
    reply = await api.call("POST", "jobs", body={"command": "", "workspace": "proj"}, params={"follow": "true"},
                           expect=400)
    assert [e["field"] for e in reply["errors"]] == ["command"]
    reply = await api.call("POST", "jobs", body={"command": "true", "workspace": "proj"},
                           params={"follow": "maybe"}, expect=400)
    assert reply["errors"][0]["field"] == "follow"


async def test_delete(api, workspace, jobs_data):
    job = await api.submit({"command": "sleep 30", "workspace": "proj"})
    await api.wait(job["id"], {"running"})
    reply = await api.call("DELETE", "jobs", job["id"], expect=409)
    assert "running" in reply["message"]
    await api.call("POST", "jobs", job["id"], "cancel")
    assert (jobs_data / "jobs" / job["id"]).exists()
    await api.call("DELETE", "jobs", job["id"], expect=204)
    await api.call("GET", "jobs", job["id"], expect=404)
    assert not (jobs_data / "jobs" / job["id"]).exists()


async def test_list_filters_and_pagination(api, jp_root_dir):
    for name in ("alpha", "beta"):
        (jp_root_dir / name).mkdir()
    ids = []
    for i in range(7):
        job = await api.submit({"command": "exit 1" if i % 3 == 0 else "true",
                                "workspace": "alpha" if i % 2 else "beta"})
        ids.append(job["id"])
    for job_id in ids:
        await api.wait(job_id)
    page = await api.call("GET", "jobs", params={"limit": "3"})
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:3] and page["next_cursor"]
    seen = [j["id"] for j in page["jobs"]]
    while page["next_cursor"]:
        page = await api.call("GET", "jobs", params={"limit": "3", "cursor": page["next_cursor"]})
        seen += [j["id"] for j in page["jobs"]]
    assert seen == ids[::-1]
    failed = await api.call("GET", "jobs", params={"status": "failed"})
    assert {j["id"] for j in failed["jobs"]} == {ids[0], ids[3], ids[6]}
    alpha = await api.call("GET", "jobs", params={"project": "alpha"})
    assert {j["id"] for j in alpha["jobs"]} == {ids[1], ids[3], ids[5]}
    both = await api.call("GET", "jobs", params={"status": "failed,succeeded", "project": "beta"})
    assert len(both["jobs"]) == 4
    for params, field in [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"status": "done"}, "status"),
                          ({"cursor": "-1"}, "cursor")]:
        reply = await api.call("GET", "jobs", params=params, expect=400)
        assert reply["errors"][0]["field"] == field


async def test_search_in_the_job_list(api, workspace):
    specs = {
        "train": {"command": "echo training", "name": "Train ResNet", "tags": ["vision"]},
        "report": {"command": py("print('50% done')"), "name": "report_v2", "tags": ["Nightly"]},
        "lookalike": {"command": "exit 1", "name": "report-v2"},  # what _ and % as wildcards would match
        "percent": {"command": "true", "name": "50 percent"},
    }
    ids = {key: (await api.submit({**spec, "workspace": "proj"}))["id"] for key, spec in specs.items()}
    for job_id in ids.values():
        await api.wait(job_id)

    async def found(**params: str) -> set[str]:
        page = await api.call("GET", "jobs", params=params)
        return {key for key, job_id in ids.items() if job_id in {j["id"] for j in page["jobs"]}}

    assert await found(q="resnet") == {"train"}  # name, any case
    assert await found(q="TRAINING") == {"train"}  # a word of a string command
    assert await found(q="print('50") == {"report"}  # an argv, its words joined
    assert await found(q="nightly") == {"report"}  # a tag
    assert await found(q=ids["lookalike"][:8]) == {"lookalike"}  # an id's beginning
    assert await found(q="50%") == {"report"} and await found(q="report_v2") == {"report"}
    assert await found(q="  resnet ") == {"train"} and len(await found(q=" ")) == 4
    assert await found(q="report", status="failed") == {"lookalike"}
    assert await found(q="report", status="succeeded", project="proj") == {"report"}
    assert await found(tag="vision") == {"train"} and await found(tag="visio") == set()
    assert await found(q="no such text anywhere") == set()
    page = await api.call("GET", "jobs", params={"q": "report", "limit": "1"})
    assert [j["id"] for j in page["jobs"]] == [ids["lookalike"]] and page["next_cursor"]
    page = await api.call("GET", "jobs", params={"q": "report", "limit": "1", "cursor": page["next_cursor"]})
    assert [j["id"] for j in page["jobs"]] == [ids["report"]] and page["next_cursor"] is None
    for params, field in [({"q": "x" * 201}, "q"), ({"tag": "t" * 101}, "tag")]:
        reply = await api.call("GET", "jobs", params=params, expect=400)
        assert [e["field"] for e in reply["errors"]] == [field]


UNAPPLIED = {"command": "true", "workspace": "proj", "image": "python:3.11",
             "resources": {"cpus": 2, "memory": "1g", "nodes": 2}}


async def test_fields_the_backend_does_not_apply_are_noted(api, workspace, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].cgroups = False  # so cpus and memory are not enforced, as on most hosts
    job = await api.submit(UNAPPLIED)
    assert job["notes"] == [
        "image 'python:3.11' is not applied: the local backend runs no containers",
        "resources.cpus 2.0 is not applied: the local backend does not limit CPUs here",
        "resources.memory '1g' is not applied: the local backend does not limit memory here",
        "resources.nodes 2 is not applied: the local backend runs a job on one machine",
    ]
    assert (await api.wait(job["id"]))["notes"] == job["notes"]
    plain = await api.submit({"command": "true", "workspace": "proj"})
    assert plain["notes"] == [] and (await api.wait(plain["id"]))["status"] == "succeeded"


@pytest.mark.parametrize("jobs_config,extra_config", [({"strict_specs": True}, {"LocalBackend": {"cgroups": False}})])
async def test_strict_specs_refuse_what_the_backend_does_not_apply(api, workspace, jobs_config, extra_config):
    reply = await api.submit(UNAPPLIED, expect=400)
    errors = {e["field"]: e["message"] for e in reply["errors"]}
    assert set(errors) == {"image", "resources.cpus", "resources.memory", "resources.nodes"}
    assert errors["image"] == "'python:3.11' is not applied: the local backend runs no containers"
    plain = await api.submit({"command": "true", "workspace": "proj"})
    assert plain["notes"] == [] and (await api.wait(plain["id"]))["status"] == "succeeded"


@pytest.mark.parametrize("jobs_config", [{"gpus": 0}])
async def test_every_error_of_a_spec_at_once(api, workspace, jobs_config):
    spec = {"command": "true", "workspace": "no/such/folder", "timeout": "soon",
            "resources": {"memory": "lots", "gpus": 99}}
    reply = await api.submit(spec, expect=400)
    assert sorted(e["field"] for e in reply["errors"]) == ["resources.gpus", "resources.memory", "timeout",
                                                           "workspace"]
    # a field the model accepts is still checked by the service beside its siblings' errors
    reply = await api.submit({**spec, "resources": {"memory": "lots", "gpus": 2}}, expect=400)
    errors = {e["field"]: e["message"] for e in reply["errors"]}
    assert set(errors) == {"resources.gpus", "resources.memory", "timeout", "workspace"}
    assert errors["resources.gpus"] == "asks for 2 GPU(s) but this host has 0"
    reply = await api.submit({"command": "", "backend": "nope", "workspace": "no/such/folder"}, expect=400)
    assert {e["field"] for e in reply["errors"]} == {"command", "backend", "workspace"}
    reply = await api.submit({"backend": "x" * 101, "workspace": "no/such/folder"}, expect=400)
    assert {e["field"] for e in reply["errors"]} == {"command", "backend", "workspace"}


async def test_logs_query_errors(api, workspace):
    job = await api.submit({"command": "true", "workspace": "proj"})
    for params, field in [({"offset": "-1"}, "offset"), ({"follow": "maybe"}, "follow")]:
        reply = await api.call("GET", "jobs", job["id"], "logs", params=params, expect=400)
        assert reply["errors"][0]["field"] == field


async def test_hundred_concurrent_submissions_are_all_recorded(api, workspace):
    jobs = await asyncio.gather(*(api.submit({"command": ["echo", str(i)], "workspace": "proj"})
                                  for i in range(100)))
    assert len({j["id"] for j in jobs}) == 100
    for job in jobs:
        await api.wait(job["id"], timeout=120)
    listed = await api.call("GET", "jobs", params={"limit": "500"})
    assert len(listed["jobs"]) == 100 and {j["status"] for j in listed["jobs"]} == {"succeeded"}
    outputs = {log_text(await api.logs(j["id"])) for j in jobs}
    assert outputs == {f"{i}\n" for i in range(100)}


async def test_openapi_is_shipped_and_served(api):
    served = await api.call("GET", "openapi.json")
    shipped = (Path(__file__).parent.parent / "jupyter_jobs" / "openapi.json").read_text()
    assert shipped == render(), "run: python -m jupyter_jobs.server.openapi > jupyter_jobs/openapi.json"
    assert served == json.loads(shipped)
    assert "/jupyter-jobs/jobs/{job_id}/logs" in served["paths"]


@pytest.mark.parametrize("method,path", [
    ("GET", "backends"), ("GET", "jobs"), ("POST", "jobs"), ("GET", "jobs/abc"), ("DELETE", "jobs/abc"),
    ("POST", "jobs/abc/cancel"), ("POST", "jobs/abc/rerun"), ("GET", "jobs/abc/logs"),
    ("GET", "jobs/abc/artifacts"), ("GET", "jobs/abc/artifacts/x"), ("GET", "openapi.json"),
])
async def test_every_endpoint_needs_auth(jp_fetch, jp_serverapp, jp_base_url, method, path, workspace):
    url = f"http://127.0.0.1:{jp_serverapp.port}{jp_base_url}jupyter-jobs/{path}"
    body = json.dumps({"command": "touch /tmp/should-not-run", "workspace": "proj"}) if method == "POST" else None
    for headers in ({}, {"Authorization": "token wrong"}):
        with pytest.raises(HTTPClientError) as info:
            await AsyncHTTPClient().fetch(url, method=method, body=body, headers=headers)
        assert info.value.code == 403


async def test_left_out_symlink_is_noted_on_the_job(api, workspace, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    os.symlink(secret, workspace / "leak.txt")
    job = await api.submit({"command": "cat leak.txt", "workspace": "proj"})
    assert job["notes"] == ["left out of the workspace: leak.txt (symlink points outside the workspace)"]
    done = await api.wait(job["id"])
    assert done["status"] == "failed" and "private" not in log_text(await api.logs(job["id"]))


async def test_each_job_runs_exactly_once(api, workspace, jobs_data):
    jobs = await asyncio.gather(*(api.submit({"command": 'echo "$JOB_ID" >> "$JOB_STORAGE_DIR/runs"; exit 1',
                                              "workspace": "proj"}) for _ in range(30)))
    done = [await api.wait(j["id"], timeout=120) for j in jobs]
    assert {(d["status"], d["exit_code"]) for d in done} == {("failed", 1)}
    runs = (jobs_data / "storage" / "runs").read_text().split()
    assert sorted(runs) == sorted(j["id"] for j in jobs)  # no job started twice


async def test_origin_of_a_submission_filters_the_list(api, workspace):
    """The panel notifies a browser of the jobs it (or its kernels) started: X-Jupyter-Jobs-Origin."""
    mine = await api.call("POST", "jobs", body={"command": "true", "workspace": "proj"}, expect=201,
                          headers={"X-Jupyter-Jobs-Origin": "browser:tab-1"})
    await api.submit({"command": "true", "workspace": "proj"})
    assert mine["origin"] == "browser:tab-1"
    listed = await api.call("GET", "jobs", params={"origin": "browser:tab-1,kernel:k-2"})
    assert [j["id"] for j in listed["jobs"]] == [mine["id"]]
    again = await api.call("POST", "jobs", mine["id"], "rerun", expect=201,
                           headers={"X-Jupyter-Jobs-Origin": "kernel:k-2"})
    assert again["origin"] == "kernel:k-2"
    bad = await api.call("POST", "jobs", body={"command": "true", "workspace": "proj"}, expect=400,
                         headers={"X-Jupyter-Jobs-Origin": "elsewhere"})
    assert bad["errors"][0]["field"] == "X-Jupyter-Jobs-Origin"
