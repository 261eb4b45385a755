"""Preemption against real servers and real processes: a job marked `preemptible` is stopped
(SIGTERM, the kill grace) for a job ahead of it that cannot get GPUs otherwise, queued again
with `attempt` counting up and JOB_PREEMPTED=1, and resumes from its checkpoint; a job not
marked so is never stopped. No GPU here: the inventory is configured (`--JobsApp.gpus=1`), the
same interface NVML fills; allocation, signals and requeueing are real."""

from __future__ import annotations

import signal
import time

import pytest

from support import host_pool, ServerProcess, kill_running_jobs, log_text

#: trains 40 steps of 0.1 s, checkpointing each to $JOB_STORAGE_DIR; on SIGTERM it saves and exits
TRAIN = r'''
import json, os, pathlib, signal, sys, time
ck = pathlib.Path(os.environ["JOB_STORAGE_DIR"]) / "checkpoint-{tag}.json"
step = json.loads(ck.read_text())["step"] if os.environ.get("JOB_PREEMPTED") == "1" and ck.exists() else 0
print(f"start at step {step}, attempt {os.environ['JOB_ATTEMPT']}", flush=True)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
while step < 40:
    time.sleep(0.1)
    step += 1
    ck.write_text(json.dumps({"step": step}))
    if stopping:
        print(f"checkpoint at step {step}", flush=True)
        sys.exit(143)
print("done", flush=True)
'''


@pytest.fixture
def pool():
    with host_pool("jjpreempt-") as folder:
        yield folder


@pytest.fixture
def servers(tmp_path, pool):
    made: list[ServerProcess] = []

    def start(*names: str) -> list[ServerProcess]:
        for name in names:
            (tmp_path / name / "root").mkdir(parents=True)
            made.append(ServerProcess(tmp_path / name / "root", tmp_path / name / "data", extra=[
                "--JobsApp.gpus=1", f"--JobsApp.gpu_pool_dir={pool}", "--JobsApp.metrics_interval=0"]).start())
        return made[-len(names):]

    yield start
    for server in made:
        server.stop(signal.SIGKILL)
        kill_running_jobs(server.data / "jobs.db")


def train(tag: str, **extra) -> dict:
    return {"command": ["python3", "-c", TRAIN.replace("{tag}", tag)], "resources": {"gpus": 1}, **extra}


def until(server: ServerProcess, job_id: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in (seen := log_text(server.logs(job_id))):
        assert time.monotonic() < deadline, f"{text!r} never came; the log: {seen!r}"
        time.sleep(0.05)
    return seen


def test_a_preemptible_job_gives_way_and_resumes_from_its_checkpoint(servers):
    (server,) = servers("alice")
    victim = server.request("POST", "/jupyter-jobs/jobs", train("v", preemptible=True))["id"]
    until(server, victim, "start at step 0, attempt 1")
    time.sleep(0.5)  # a few steps done
    urgent = server.request("POST", "/jupyter-jobs/jobs", {"command": "echo urgent", "resources": {"gpus": 1},
                                                          "priority": 5})["id"]
    assert server.wait(urgent, timeout=30)["status"] == "succeeded"
    done = server.wait(victim, timeout=60)
    assert done["status"] == "succeeded", done
    assert (done["attempt"], done["preempted"]) == (2, 1)
    text = log_text(server.logs(victim))
    stopped = int(text.split("checkpoint at step ")[1].split()[0])
    assert stopped > 0
    assert "[jupyter_jobs] preempted: root's own job has priority 5, more than its 0; queued again as attempt 2" \
        in text
    assert f"start at step {stopped}, attempt 2" in text, "it resumed where its checkpoint says"
    assert text.rstrip().endswith("done")


def test_a_job_not_marked_preemptible_is_never_stopped(servers):
    (server,) = servers("alice")
    steady = server.request("POST", "/jupyter-jobs/jobs", train("s"))["id"]
    until(server, steady, "start at step 0")
    urgent = server.request("POST", "/jupyter-jobs/jobs", {"command": "echo urgent", "resources": {"gpus": 1},
                                                          "priority": 5})["id"]
    time.sleep(1.5)
    waiting = server.request("GET", f"/jupyter-jobs/jobs/{urgent}")
    assert waiting["status"] == "queued" and "GPU" in waiting["waiting"], waiting
    done = server.wait(steady, timeout=60)
    assert (done["status"], done["attempt"], done["preempted"]) == ("succeeded", 1, 0)
    assert server.wait(urgent, timeout=30)["status"] == "succeeded"


def test_another_servers_job_ahead_preempts_through_the_hosts_pool(servers):
    """Two servers on one pool (one user's two servers: their own jobs order by priority as
    asked): bob's urgent job waits for the only GPU, and alice's server stops its own
    preemptible job for it."""
    alice, bob = servers("alice", "bob")
    victim = alice.request("POST", "/jupyter-jobs/jobs", train("x", preemptible=True))["id"]
    until(alice, victim, "start at step 0")
    urgent = bob.request("POST", "/jupyter-jobs/jobs", {"command": "echo urgent", "resources": {"gpus": 1},
                                                       "priority": 3})["id"]
    assert bob.wait(urgent, timeout=30)["status"] == "succeeded"
    done = alice.wait(victim, timeout=60)
    assert (done["status"], done["attempt"], done["preempted"]) == ("succeeded", 2, 1)
    assert "preempted: root's own job has priority 3, more than its 0" in log_text(alice.logs(victim))


def test_a_cancel_during_a_preemption_ends_the_job_and_does_not_queue_it_again(servers):
    """The user's cancel outranks the preemption under way (CI once saw the victim run again)."""
    (server,) = servers("alice")
    stubborn = ("import signal, time\nsignal.signal(signal.SIGTERM, lambda *_: print('SIGTERM', flush=True))\n"
                "print('victim', flush=True)\ntime.sleep(600)")
    victim = server.request("POST", "/jupyter-jobs/jobs", {"command": ["python3", "-c", stubborn],
                                                          "resources": {"gpus": 1}, "preemptible": True})["id"]
    until(server, victim, "victim")
    urgent = server.request("POST", "/jupyter-jobs/jobs", {"command": "echo urgent", "resources": {"gpus": 1},
                                                          "priority": 5})["id"]
    until(server, victim, "SIGTERM")  # being preempted: killed after the grace unless something else ends it
    server.request("POST", f"/jupyter-jobs/jobs/{victim}/cancel")
    done = server.wait(victim, timeout=30)
    assert (done["status"], done["attempt"], done["preempted"]) == ("cancelled", 1, 0), done
    assert server.wait(urgent, timeout=30)["status"] == "succeeded"
    time.sleep(1.5)  # a queue pass or two: nothing brings the victim back
    assert server.request("GET", f"/jupyter-jobs/jobs/{victim}")["status"] == "cancelled"
