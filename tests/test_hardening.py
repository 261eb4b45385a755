"""What an audit broke, as tests against real parts: artifact downloads racing symlink swaps,
a job that must run exactly once across a crash, processes that try to escape their job, and
bad input that must be a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from jupyter_jobs.backends import cgroups
from support import log_text, require

SWAPPER = r"""
import os, sys, time
os.chdir(os.environ["JOB_ARTIFACTS_DIR"])
os.makedirs("real", exist_ok=True)
open("real/data.txt", "w").write("ok\n")
print("swapping", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    open("f.tmp", "w").write("ok\n"); os.replace("f.tmp", "out.txt")
    os.symlink("/etc/passwd", "l.tmp"); os.replace("l.tmp", "out.txt")
    os.symlink("/etc", "d.tmp"); os.replace("d.tmp", "dir")
    os.symlink("real", "d.tmp"); os.replace("d.tmp", "dir")
"""


async def _downloads_never_leave_the_artifacts(api, job_id: str, rounds: int) -> set[int]:
    codes = set()
    host_file = Path("/etc/passwd").read_bytes()
    for _ in range(rounds):
        for path in ("out.txt", "dir/passwd", "dir/data.txt"):
            resp = await api.fetch("jupyter-jobs", "jobs", job_id, "artifacts", path, raise_error=False)
            codes.add(resp.code)
            assert resp.code in (200, 404), resp.code
            if resp.code == 200:
                assert resp.body == b"ok\n", f"{path} served {resp.body[:40]!r}"
                assert resp.body != host_file
        listing = await api.call("GET", "jobs", job_id, "artifacts")
        assert {a["path"] for a in listing["artifacts"]} <= {"out.txt", "real/data.txt", "f.tmp"}
    return codes


async def test_artifact_downloads_never_follow_a_swapped_in_symlink(api, workspace):
    (workspace / "swap.py").write_text(SWAPPER)
    job = await api.submit({"command": ["python", "swap.py", "8"], "workspace": "proj"})
    await api.wait_for_output(job["id"], "swapping")
    codes = await _downloads_never_leave_the_artifacts(api, job["id"], 150)
    assert 200 in codes  # the race was really run: real files were served between the swaps
    await api.call("POST", "jobs", job["id"], "cancel", body={})


@pytest.mark.parametrize("swap", ["ln -s \"$JOB_STORAGE_DIR/victim\" ../log", "mkfifo ../log"], ids=["link", "fifo"])
async def test_a_job_that_swaps_its_log_for_a_link_or_a_fifo_misleads_nothing(api, workspace, jobs_data, swap):
    """Its folder is within a local job's reach: a link put in the log's place must not send its
    output into another of the user's files, nor a FIFO hang the server that opens it."""
    victim = jobs_data / "storage" / "victim"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("the user's\n")
    command = f"rm -f ../log ../log.idx && {swap} && exit 3"  # its retry's note is the next write
    job = await api.submit({"command": command, "workspace": "proj", "retries": 1, "retry_on": ["exit_code"],
                            "retry_backoff": 0})
    done = await asyncio.wait_for(api.wait(job["id"]), 30)
    assert done["status"] == "failed", done
    assert victim.read_text() == "the user's\n"
    assert (await api.call("GET", "jobs", job["id"]))["status"] == "failed"  # the server still answers


async def test_a_symlink_loop_in_the_workspace_is_left_out_with_a_note(api, jp_root_dir):
    (jp_root_dir / "loop-a").symlink_to("loop-b")
    (jp_root_dir / "loop-b").symlink_to("loop-a")
    job = await api.submit({"command": "echo fine"})  # the default workspace: the whole root
    assert any("loop-a" in note and "symlink loop" in note for note in job["notes"])
    assert (await api.wait(job["id"]))["status"] == "succeeded"


@pytest.mark.parametrize(("body", "field"), [
    ({"command": "x", "timeout": 10**300}, "timeout"),
    ({"command": "x", "resources": {"memory": 10**300}}, "resources.memory"),
    ({"command": "x", "resources": {"gpus": False}}, "resources.gpus"),
    ({"command": "x", "resources": {"gpus": "2"}}, "resources.gpus"),
    ({"command": "x", "resources": {"nodes": 1.5}}, "resources.nodes"),
    ({"command": "x", "env": {"A\nB": "1"}}, "env"),
    ({"command": "x", "env": {"BIG": "v" * (40 << 10)}}, "env"),
    ({"command": "x" * (70 << 10)}, "command"),
    ({"command": ["x"] * 20000}, "command"),
    ({"command": "x", "image": "i" * 2000}, "image"),
])
async def test_bad_input_is_a_400_naming_the_field(api, body, field):
    reply = await api.submit(body, expect=400)
    assert field in {e["field"] for e in reply["errors"]}, reply


@pytest.mark.parametrize("raw", [
    "[" * 100_000 + "]" * 100_000,  # nested too deeply for any parser
    json.dumps({"command": "x", "env": {f"K{i}": "v" * 1000 for i in range(2000)}}),  # 2 MB
], ids=["nested", "too-large"])
async def test_bodies_that_are_too_deep_or_too_large_are_refused(api, raw):
    reply = await api.submit(raw, expect=400)
    assert reply["errors"][0]["field"] == "body"
    assert (await api.call("GET", "jobs"))["jobs"] == []  # nothing was stored


@pytest.mark.parametrize("job_id", ["odd.id", "with space", "a%2Fb", "ünïcode"])
async def test_any_unknown_job_id_gets_a_json_404(api, job_id):
    resp = await api.call("GET", "jobs", job_id, expect=404)
    assert "no job" in resp["message"]


# -- processes stay inside the job (a cgroup per local job) ------------------------------------
def _cgroup_problem() -> str | None:
    if cgroups.version() is None:
        return "no cgroup hierarchy is mounted"
    if os.geteuid() != 0:
        return "creating cgroups needs root (or a delegated cgroup v2 tree)"
    return None


ESCAPES = (
    "setsid sleep {n}1 > /dev/null 2>&1 &\n"                     # a new session
    "(sleep {n}2 > /dev/null 2>&1 &)\n"                          # a double fork, reparented to init
    "python -c 'import os,time; os.setpgid(0,0); os.fork() or time.sleep({n}3)' &\n"  # a new group
    "echo started\n"
)


def _survivors(n: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(f"{n}{k}" in cmd for k in (1, 2, 3)) and ("sleep" in cmd or "python" in cmd):
            found.append(f"{pid}: {cmd}")
    return found


async def _until_gone(n: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _survivors(n)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def _contain(jp_serverapp, contained: bool) -> None:
    """With a cgroup per job, or (where none can be made) the supervisor as subreaper alone."""
    if contained:
        require("cgroups", _cgroup_problem())
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].cgroups = contained


@pytest.mark.parametrize("contained", [True, False], ids=["cgroup", "subreaper"])
async def test_nothing_a_job_starts_outlives_it(api, workspace, jp_serverapp, contained):
    _contain(jp_serverapp, contained)
    n = 9871 if contained else 9873
    job = await api.submit({"command": ESCAPES.format(n=n) + "sleep 0.5\n", "workspace": "proj"})
    done = await api.wait(job["id"])
    assert done["status"] == "succeeded" and "started" in log_text(await api.logs(job["id"]))
    assert await _until_gone(n) == []


@pytest.mark.parametrize("contained", [True, False], ids=["cgroup", "subreaper"])
async def test_cancel_ends_every_process_of_the_job(api, workspace, jp_serverapp, contained):
    _contain(jp_serverapp, contained)
    n = 9872 if contained else 9874
    job = await api.submit({"command": ESCAPES.format(n=n) + "sleep 600\n", "workspace": "proj"})
    await api.wait_for_output(job["id"], "started")
    await asyncio.sleep(0.3)
    assert len(_survivors(n)) >= 3  # the escapes did escape their process group
    await api.call("POST", "jobs", job["id"], "cancel", body={})
    assert (await api.wait(job["id"]))["status"] == "cancelled"
    assert await _until_gone(n) == []


async def test_local_jobs_get_their_memory_and_cpu_limits(api, workspace):
    require("cgroups", _cgroup_problem())
    hog = "python -c 'b = bytearray(400 << 20); print(len(b))'"
    job = await api.submit({"command": hog, "workspace": "proj", "resources": {"memory": "64m"}})
    done = await api.wait(job["id"])
    assert (done["status"], done["reason"]) == ("failed", "oom"), done
    quota = ("""p=$(grep -E ':cpu,cpuacct:|:cpu:' /proc/self/cgroup | cut -d: -f3); """
             """echo "$p" >&2; cat /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us""" if cgroups.version() == 1
             else """p=$(cut -d: -f3 /proc/self/cgroup); echo "$p" >&2; cut -d' ' -f1 /sys/fs/cgroup$p/cpu.max""")
    job = await api.submit({"command": quota, "workspace": "proj", "resources": {"cpus": 0.5}})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    chunks = await api.logs(job["id"])
    assert log_text(chunks, "stdout").strip() == "50000"
    assert log_text(chunks, "stderr").startswith("/jupyter_jobs/")  # the job's own cgroup
    backends = await api.call("GET", "backends")
    local = next(b for b in backends["backends"] if b["name"] == "local")
    assert local["capabilities"]["cpus"] and local["capabilities"]["memory"]


async def test_an_ended_jobs_cgroup_is_removed(api, workspace, jp_serverapp):
    """Removed by the janitor once what the job left charged is reclaimed, not by the thread
    that follows every job's output (which must not wait on the kernel's writeback)."""
    require("cgroups", _cgroup_problem())
    service = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop().service
    jobs = [await api.submit({"command": f"head -c 200000 /dev/urandom > out{i}.bin && echo {i}",
                              "workspace": "proj"}) for i in range(6)]
    leaves = []
    for job in jobs:
        assert (await api.wait(job["id"]))["status"] == "succeeded"
        leaves.append((await service.store.get(job["id"])).backend_state["cgroup"])
    memory = Path("/sys/fs/cgroup") / ("" if cgroups.version() == 2 else "memory") / "jupyter_jobs"
    deadline = time.monotonic() + 10
    while (left := [leaf for leaf in leaves if (memory / leaf).exists()]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert left == [] and all(leaves)


# -- exactly once, across a crash ---------------------------------------------------------------
COUNT = "import os; open(os.environ['JOB_STORAGE_DIR'] + '/runs', 'a').write('ran\\n'); print('ran')"


def test_a_crash_between_spawn_and_record_never_runs_the_job_twice(server_process):
    """The window the audit widened: the history is locked (another writer holds it) while the
    job's process is spawned; the server is killed before it can record the launch."""
    for _attempt in range(3):
        server = server_process().start()
        lock = sqlite3.connect(server.data / "jobs.db", timeout=30, isolation_level=None)
        job = server.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", COUNT]})
        lock.execute("BEGIN IMMEDIATE")  # from here on the server cannot record anything
        wrapper = _wait_for_wrapper(server.data / "jobs" / job["id"])
        state = lock.execute("SELECT status, backend_state FROM jobs WHERE id = ?", (job["id"],)).fetchone()
        if not wrapper or state != ("queued", "{}"):
            lock.execute("ROLLBACK")  # it got past the window before the lock: try again
            server.stop(signal.SIGKILL)
            continue
        server.stop(signal.SIGKILL)
        lock.execute("ROLLBACK")
        lock.close()
        server.start()
        done = server.wait(job["id"])
        assert done["status"] == "succeeded"
        assert log_text(server.logs(job["id"])) == "ran\n"
        time.sleep(0.5)  # the first wrapper, had it run the command, would have written by now
        assert (server.data / "storage" / "runs").read_text() == "ran\n"
        return
    pytest.fail("never caught the server between spawning a job and recording it")


def _wait_for_wrapper(job_dir: Path, timeout: float = 5) -> bool:
    """Whether the job's supervisor took the job (it opens its diagnostics file in the job's
    folder as it does), held at its gate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job_dir / "relay.log").exists():
            return True
        time.sleep(0.01)
    return False


async def test_history_and_job_folders_are_private(api, workspace, jobs_data):
    job = await api.submit({"command": "echo $API_TOKEN", "workspace": "proj", "env": {"API_TOKEN": "s3cret"}})
    await api.wait(job["id"])
    assert job["spec"]["env"]["API_TOKEN"] == "********"  # never echoed
    modes = {p.name: p.stat().st_mode & 0o777 for p in (jobs_data, jobs_data / "jobs.db",
                                                         jobs_data / "jobs" / job["id"])}
    assert modes == {"jobs-data": 0o700, "jobs.db": 0o600, job["id"]: 0o700}


# -- log text is faithful to the bytes ---------------------------------------------------------
# a line every 10 ms (a chatty training loop): the supervisor sees each write apart, even on a
# loaded 2-core machine; writes closer than the supervisor can wake may share one read
ALTERNATE = ("import sys, time\nfor i in range(150):\n    print('o', i, flush=True)\n    time.sleep(0.01)\n"
             "    print('e', i, file=sys.stderr, flush=True)\n    time.sleep(0.01)\n")
SPLIT = ("import os, time\nos.write(1, '€uro'.encode()[:2]); time.sleep(0.2)\nos.write(2, b'between\\n');"
         " time.sleep(0.2)\nos.write(1, '€uro'.encode()[2:] + b'\\n')\n")


# a write to each stream, microseconds apart (tqdm's last bar on stderr, then a print): both are
# pending when the supervisor wakes, and a terminal shows them in the order they were made. The
# pairs are 25 ms apart (the next pair's first write must not come before the supervisor wakes,
# also on a loaded 2-core machine): writes to one stream around one to the other, all sooner
# than that, are beyond any reader of two pipes (relay.py, `_Readiness`)
BACK_TO_BACK = ("import os, time\nfor i in range(40):\n    first, then = (2, 1) if i % 2 == 0 else (1, 2)\n"
                "    os.write(first, b'%d first\\n' % i); os.write(then, b'%d then\\n' % i)\n"
                "    time.sleep(0.025)\n")
TQDM = ("import time\nfrom tqdm import tqdm\nfor r in range(8):\n"
        "    for i in tqdm(range(20)):\n        time.sleep(0.001)\n    print('after', r)\n    time.sleep(0.025)\n")


async def _log_lines(api, workspace, name: str, script: str) -> list[tuple[str, str]]:
    """Run `script`; its log as (stream, line), lines split after joining each run of one
    stream's chunks (a read may end mid-line)."""
    (workspace / name).write_text(script)
    job = await api.submit({"command": ["python", name], "workspace": "proj"})
    chunks = [c for c in await api.logs(job["id"], follow=True) if "text" in c]
    runs: list[list[str]] = []
    for c in chunks:
        if runs and runs[-1][0] == c["stream"]:
            runs[-1][1] += c["text"]
        else:
            runs.append([c["stream"], c["text"]])
    return [(stream, line) for stream, text in runs for line in text.splitlines()]


async def test_alternating_streams_keep_their_order_line_by_line(api, workspace):
    lines = await _log_lines(api, workspace, "alternate.py", ALTERNATE)
    expected = [pair for i in range(150) for pair in (("stdout", f"o {i}"), ("stderr", f"e {i}"))]
    assert lines == expected


async def test_writes_microseconds_apart_keep_the_order_they_were_made(api, workspace):
    lines = await _log_lines(api, workspace, "back_to_back.py", BACK_TO_BACK)
    order = [("stderr", "stdout"), ("stdout", "stderr")]
    expected = [pair for i in range(40) for pair in zip(order[i % 2], (f"{i} first", f"{i} then"))]
    assert lines == expected


async def test_a_print_after_a_tqdm_bar_comes_after_its_last_line(api, workspace):
    (workspace / "bars.py").write_text(TQDM)
    job = await api.submit({"command": ["python", "bars.py"], "workspace": "proj"})
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks, "stdout") == "".join(f"after {r}\n" for r in range(8))
    shown = log_text(chunks)  # both streams, in the log's order: what the notebook cell shows
    for r in range(8):  # the bar's line is ended (its "\n" on stderr) before the print
        assert re.search(rf"100%[^\r\n]*20/20[^\r\n]*\]\nafter {r}\n", shown), shown


async def test_a_character_split_across_writes_arrives_whole(api, workspace):
    (workspace / "split.py").write_text(SPLIT)
    job = await api.submit({"command": ["python", "split.py"], "workspace": "proj"})
    chunks = await api.logs(job["id"], follow=True)
    assert log_text(chunks, "stdout") == "€uro\n" and log_text(chunks, "stderr") == "between\n"
    assert "\ufffd" not in log_text(chunks)


# -- the kernel credential ---------------------------------------------------------------------
async def _with_kernel_token(jp_serverapp, jp_http_port, jp_base_url, headers):
    from tornado.httpclient import AsyncHTTPClient

    token = jp_serverapp.web_app.settings["jupyter_jobs_kernel_token"]
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}jupyter-jobs/jobs"
    return await AsyncHTTPClient().fetch(url, headers={"Authorization": f"token {token}", **headers},
                                         raise_error=False)


async def test_the_kernel_credential_is_for_kernels_only(api, jp_serverapp, jp_http_port, jp_base_url):
    assert "JUPYTER_JOBS_TOKEN" not in os.environ  # terminals and other children inherit this
    from jupyter_jobs.server import provisioner

    assert provisioner.KERNEL_ENV["JUPYTER_JOBS_TOKEN"] == jp_serverapp.web_app.settings["jupyter_jobs_kernel_token"]
    ok = await _with_kernel_token(jp_serverapp, jp_http_port, jp_base_url, {})
    assert ok.code == 200
    wrong_host = await _with_kernel_token(jp_serverapp, jp_http_port, jp_base_url, {"Host": "evil.example:80"})
    assert wrong_host.code == 403
    cross_origin = await _with_kernel_token(jp_serverapp, jp_http_port, jp_base_url,
                                            {"Origin": "http://evil.example"})
    assert cross_origin.code == 404


# -- queue truth ---------------------------------------------------------------------------------
async def test_every_queued_job_says_why_it_waits(api, workspace, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].max_running = 1
    first = await api.submit({"command": "sleep 30", "workspace": "proj"})
    await api.wait(first["id"], {"running"})
    second = await api.submit({"command": "echo 2", "workspace": "proj"})
    third = await api.submit({"command": "echo 3", "workspace": "proj"})
    await asyncio.sleep(0.2)
    listed = {j["id"]: j for j in (await api.call("GET", "jobs"))["jobs"]}
    assert listed[first["id"]]["waiting"] is None
    assert listed[second["id"]]["waiting"] == "the local backend runs 1 job(s) at once, all busy; #1 in the queue"
    assert (await api.job(third["id"]))["waiting"].endswith("#2 in the queue")
    await api.call("POST", "jobs", first["id"], "cancel", body={})
    assert (await api.wait(third["id"]))["status"] == "succeeded"


# -- retries -------------------------------------------------------------------------------------
async def test_a_failed_attempt_is_retried_and_the_log_shows_both(api, workspace):
    flaky = ('if [ -e "$JOB_STORAGE_DIR/tried-$JOB_ID" ]; then echo second try; '
             'else touch "$JOB_STORAGE_DIR/tried-$JOB_ID"; echo first try; exit 3; fi')
    job = await api.submit({"command": flaky, "workspace": "proj", "retries": 1, "retry_on": ["exit_code"],
                            "retry_backoff": 0.1})
    done = await api.wait(job["id"])
    assert (done["status"], done["attempt"]) == ("succeeded", 2)
    text = log_text(await api.logs(job["id"]))
    assert text.startswith("first try\n") and text.endswith("second try\n")
    assert "[jupyter_jobs] attempt 1 of 2 failed (exit_code: the command exited with code 3)" in text


# -- disk ------------------------------------------------------------------------------------------
async def test_a_log_over_its_cap_keeps_the_tail_and_notes_the_cut(api, workspace, jp_serverapp, jobs_data):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.log_files.max_size = 256 << 10
    writer = "for i in range(200000): print(f'line {i:06d} ' + 'x' * 40)"  # ~11 MB
    job = await api.submit({"command": ["python", "-c", writer], "workspace": "proj"})
    assert (await api.wait(job["id"]))["status"] == "succeeded"  # the job ran on to its end
    text = log_text(await api.logs(job["id"]))
    assert text.startswith("[jupyter_jobs] ") and "bytes of output were dropped here" in text
    lines = text.splitlines()[1:]
    assert lines[-1] == "line 199999 " + "x" * 40 and len(text) <= 300 << 10
    assert [int(line.split()[1]) for line in lines] == list(range(int(lines[0].split()[1]), 200000))
    log_file = jobs_data / "jobs" / job["id"] / "log"
    assert log_file.stat().st_size > 10 << 20 and log_file.stat().st_blocks * 512 < 1 << 20  # the head is freed
    resumed = await api.logs(job["id"], offset=1000)  # an offset inside the dropped part: the note, then the tail
    assert resumed[0]["text"].startswith("[jupyter_jobs]") and resumed[1]["offset"] == resumed[0]["next"]


async def test_delete_that_cannot_remove_files_keeps_the_job_and_says_what(api, workspace, jobs_data):
    import shutil
    import subprocess

    require("chattr", None if shutil.which("chattr") and os.geteuid() == 0 else "needs chattr as root")
    job = await api.submit({"command": "echo x > $JOB_ARTIFACTS_DIR/stuck.txt", "workspace": "proj"})
    await api.wait(job["id"])
    stuck = jobs_data / "jobs" / job["id"] / "artifacts" / "stuck.txt"
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        refused = await api.call("DELETE", "jobs", job["id"], expect=409)
        assert "could not be removed" in refused["message"] and "stuck.txt" in refused["message"]
        assert (await api.job(job["id"]))["status"] == "succeeded"  # still listed, nothing forgotten
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    await api.call("DELETE", "jobs", job["id"], expect=204)
    assert not (jobs_data / "jobs" / job["id"]).exists()
    await api.call("GET", "jobs", job["id"], expect=404)


async def test_a_configured_strip_env_adds_to_the_credentials_kept_out(api, workspace, jp_serverapp, monkeypatch):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].strip_env = ["MY_SITE_SECRET"]
    monkeypatch.setenv("MY_SITE_SECRET", "site")
    monkeypatch.setenv("JUPYTER_TOKEN", "server-token")
    monkeypatch.setenv("HARMLESS", "kept")
    job = await api.submit({"command": 'echo "${MY_SITE_SECRET:-none} ${JUPYTER_TOKEN:-none} $HARMLESS"',
                            "workspace": "proj"})
    assert log_text(await api.logs(job["id"], follow=True)) == "none none kept\n"
