"""Nothing is lost across server restarts: real `jupyter server` processes on one data folder."""

from __future__ import annotations

import os
import signal
import time

import pytest

from support import log_text

COUNTER = "import time\nfor i in range({n}):\n    print('line', i, flush=True)\n    time.sleep({pause})\n"


def submit(server, spec):
    return server.request("POST", "/jupyter-jobs/jobs", spec)


def wait_text(server, job_id, text, timeout=20):
    deadline = time.monotonic() + timeout
    while text not in log_text(server.logs(job_id)):
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "crash"])
def test_running_job_is_reattached_with_no_lost_or_repeated_lines(server_process, sig):
    server = server_process().start()
    job = submit(server, {"command": ["python", "-c", COUNTER.format(n=40, pause=0.05)]})
    wait_text(server, job["id"], "line 5\n")
    server.stop(sig)
    time.sleep(0.5)  # the job goes on writing while no server watches it
    server.start()
    chunks = server.logs(job["id"], follow=True)
    assert log_text(chunks) == "".join(f"line {i}\n" for i in range(40))
    assert chunks[-1]["status"] == "succeeded" and chunks[-1]["exit_code"] == 0
    assert server.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["status"] == "succeeded"


def test_job_that_finished_while_down_keeps_its_exit_code(server_process):
    server = server_process().start()
    job = submit(server, {"command": "echo begun; sleep 1; echo ended; exit 4"})
    wait_text(server, job["id"], "begun")
    server.stop()
    time.sleep(1.5)
    server.start()
    done = server.wait(job["id"])
    assert done["status"] == "failed" and done["reason"] == "exit_code" and done["exit_code"] == 4
    assert log_text(server.logs(job["id"])) == "begun\nended\n"


def test_job_killed_while_down_is_lost(server_process):
    server = server_process().start()
    job = submit(server, {"command": ["python", "-c", "import os,time; print(os.getpgid(0), flush=True); "
                                                      "time.sleep(60)"]})
    wait_text(server, job["id"], "\n")
    pgid = int(log_text(server.logs(job["id"])).split()[0])
    server.stop()
    supervisor = os.getsid(pgid)  # the job's supervisor, which would otherwise record the kill
    os.killpg(supervisor, signal.SIGKILL)
    os.killpg(pgid, signal.SIGKILL)
    time.sleep(0.3)
    server.start()
    done = server.wait(job["id"])
    assert done["status"] == "failed" and done["reason"] == "lost" and done["message"]
    assert log_text(server.logs(job["id"])) == f"{pgid}\n"  # its output is kept


def test_queued_jobs_start_after_restart_and_history_survives(server_process):
    server = server_process(extra=["--LocalBackend.max_running=1"]).start()
    first = submit(server, {"command": "echo one; sleep 60"})
    second = submit(server, {"command": "echo two"})
    server.wait(first["id"], {"running"})
    before = server.request("GET", "/jupyter-jobs/jobs")["jobs"]
    assert server.request("GET", f"/jupyter-jobs/jobs/{second['id']}")["status"] == "queued"
    server.stop()
    server.start()
    after = server.request("GET", "/jupyter-jobs/jobs")["jobs"]
    assert [j["id"] for j in after] == [j["id"] for j in before]
    assert server.request("GET", f"/jupyter-jobs/jobs/{second['id']}")["status"] == "queued"
    cancelled = server.request("POST", f"/jupyter-jobs/jobs/{first['id']}/cancel")  # a reattached job
    assert cancelled["status"] == "cancelled"
    assert server.wait(second["id"])["status"] == "succeeded"
    assert log_text(server.logs(second["id"])) == "two\n"


def test_timeout_still_enforced_after_restart(server_process):
    server = server_process().start()
    job = submit(server, {"command": "echo go; sleep 60", "timeout": 3})
    wait_text(server, job["id"], "go")
    server.stop()
    server.start()
    done = server.wait(job["id"], timeout=20)
    assert done["status"] == "failed" and done["reason"] == "timeout"


def test_a_cancel_in_progress_survives_a_restart(server_process):
    server = server_process().start()
    stubborn = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('up', flush=True)\ntime.sleep(60)\n")
    job = submit(server, {"command": ["python", "-c", stubborn]})
    wait_text(server, job["id"], "up")
    server.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")  # ignored SIGTERM: still in its grace
    server.stop(signal.SIGKILL)
    server.start()  # it stops the job again and kills it after the grace period
    done = server.wait(job["id"], timeout=30)
    assert done["status"] == "cancelled", done
