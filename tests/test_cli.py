"""The `jupyter-jobs` command as a subprocess against a real server (and, with no server, the
service embedded in the command): runs that exit with the job's code, logs, show/list/cancel/
rerun, job files (export, then run again), artifacts, workflows, schedules, errors with exit
codes that say which, and finding a running server as `jupyter server list` does. The current
folder is the workspace however the server was named; global options work after the
subcommand; a command imports nothing of the server side; Ctrl-C, `logs -f`, `workflow run
--wait`, tables as wide as the terminal, examples in `--help`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("jupyter-jobs"))


@pytest.fixture
def server(server_process, tmp_path):
    runtime = tmp_path / "runtime"
    srv = server_process(env={"JUPYTER_RUNTIME_DIR": str(runtime)}).start()
    (srv.root / "proj").mkdir()
    (srv.root / "proj" / "data.txt").write_text("from the workspace\n")
    srv.runtime = runtime
    return srv


def environment(server, env: dict | None = None) -> dict[str, str]:
    """The CLI's environment: the server's runtime folder, and no service settings but `env`'s."""
    left_out = ("JUPYTER_JOBS_URL", "JUPYTER_JOBS_TOKEN", "JUPYTER_JOBS_ROOT", "COLUMNS")
    base = {k: v for k, v in os.environ.items() if k not in left_out}
    runtime = {"JUPYTER_RUNTIME_DIR": str(server.runtime)} if server else {}
    return {**base, "JUPYTER_PLATFORM_DIRS": "1", **runtime, **(env or {})}


def cli(server, *args: str, cwd: Path | None = None, discover: bool = False, timeout: float = 120,
        env: dict | None = None, program: tuple[str, ...] = (CLI,)) -> subprocess.CompletedProcess:
    given = [] if discover else ["--url", server.url, "--token", server.token]
    return subprocess.run([*program, *given, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or server.root / "proj", env=environment(server, env))


def test_run_follows_the_output_and_exits_with_the_jobs_code(server):
    done = cli(server, "run", "--name", "cli-run", "--", "sh", "-c", "cat data.txt; echo oops >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "from the workspace\n"
    assert "oops\n" in done.stderr and "failed" in done.stderr and "exit 3" in done.stderr
    listed = json.loads(cli(server, "--json", "list", "--limit", "5").stdout)
    assert listed["jobs"][0]["spec"]["name"] == "cli-run" and listed["jobs"][0]["spec"]["workspace"] == "proj"


def test_detach_then_logs_show_cancel_rerun(server):
    started = cli(server, "--json", "run", "-d", "--", "sh", "-c", "echo first; sleep 60")
    job = json.loads(started.stdout)
    assert started.returncode == 0 and job["status"] == "queued"
    deadline = time.monotonic() + 30
    while "first" not in cli(server, "logs", job["id"]).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    shown = cli(server, "show", job["id"]).stdout
    assert f"job {job['id']} running" in shown and "command: sh -c" in shown
    assert "cancelled" in cli(server, "cancel", job["id"]).stdout
    again = json.loads(cli(server, "--json", "rerun", job["id"]).stdout)
    assert again["id"] != job["id"] and again["spec"]["command"] == job["spec"]["command"]
    cli(server, "cancel", again["id"])
    follow = cli(server, "logs", "-f", job["id"])
    assert follow.returncode == 3 and follow.stdout == "first\n" and "cancelled" in follow.stderr


def test_a_job_file_round_trip(server):
    first = json.loads(cli(server, "--json", "run", "-d", "-e", "MODE=fast", "-e", "API_TOKEN=hush", "--gpus", "0",
                           "--", "sh", "-c", 'echo "$MODE ${API_TOKEN:-none}"').stdout)
    exported = cli(server, "export", first["id"])
    assert "# left out: env.API_TOKEN (a secret)" in exported.stdout and "hush" not in exported.stdout
    path = server.root / "proj" / "job.yaml"
    path.write_text(exported.stdout)
    again = cli(server, "run", "-f", str(path), "-e", "MODE=slow")
    assert again.returncode == 0 and again.stdout == "slow none\n", again.stderr
    as_json = json.loads(cli(server, "export", first["id"], "--format", "json").stdout)
    assert as_json["env"] == {"MODE": "fast"} and as_json["workspace"] == "proj"


def test_artifacts_are_listed_and_downloaded(server, tmp_path):
    done = cli(server, "--json", "run", "-d", "--", "sh", "-c", 'mkdir -p "$JOB_ARTIFACTS_DIR/sub" && '
               'echo weights > "$JOB_ARTIFACTS_DIR/sub/model.txt"')
    job = json.loads(done.stdout)
    assert server.wait(job["id"])["status"] == "succeeded"
    out = tmp_path / "got"
    listed = cli(server, "artifacts", job["id"], "--download", str(out))
    assert "sub/model.txt" in listed.stdout and (out / "sub" / "model.txt").read_text() == "weights\n"


def test_errors_say_what_and_exit_with_a_code_that_says_which(server):
    bad = cli(server, "run", "--gpus", "8", "--", "true")
    assert bad.returncode == 2 and "resources.gpus" in bad.stderr and "asks for 8 GPU(s)" in bad.stderr
    missing = cli(server, "show", "nope")
    assert missing.returncode == 4 and "no job 'nope'" in missing.stderr
    neither = cli(server, "run")
    assert neither.returncode == 2 and "give a command" in neither.stderr
    gone = cli(server, "--url", "http://127.0.0.1:9", "list")
    assert gone.returncode == 6 and "cannot reach" in gone.stderr


def test_workflows_and_schedules(server):
    (server.root / "proj" / "flow.yaml").write_text(
        "name: cli-flow\njobs:\n  a: {command: echo a}\n  b: {needs: a, command: echo b}\n")
    made = cli(server, "--json", "workflow", "run", "flow.yaml")
    run = json.loads(made.stdout)
    assert made.returncode == 0 and [j["name"] for j in run["jobs"]] == ["a", "b"]
    deadline = time.monotonic() + 30
    while "succeeded" not in (shown := cli(server, "workflow", "show", run["id"]).stdout.splitlines()[0]):
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    assert run["id"] in cli(server, "workflow", "list").stdout
    (server.root / "proj" / "tick.yaml").write_text("command: echo tick\nworkspace: proj\n")
    created = json.loads(cli(server, "--json", "schedule", "create", "tick.yaml", "--cron", "0 3 * * *",
                             "--timezone", "Europe/Berlin", "--name", "nightly").stdout)
    assert created["name"] == "nightly" and created["timezone"] == "Europe/Berlin"
    assert "nightly" in cli(server, "schedule", "list").stdout
    assert "paused" in cli(server, "schedule", "pause", created["id"]).stdout
    bad = cli(server, "schedule", "create", "tick.yaml", "--cron", "whenever")
    assert bad.returncode == 2 and "cron:" in bad.stderr
    assert cli(server, "schedule", "delete", created["id"]).returncode == 0
    assert cli(server, "schedule", "show", created["id"]).returncode == 4


def test_it_finds_the_running_server_like_jupyter_server_list(server):
    done = cli(server, "--json", "run", "-d", "--", "true", discover=True)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert server.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["spec"]["workspace"] == "proj"


def test_with_no_server_the_service_runs_in_the_command(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / "empty"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    env.pop("JUPYTER_JOBS_URL", None)
    done = subprocess.run([CLI, "run", "--", "sh", "-c", "echo embedded"], capture_output=True, text=True,
                          timeout=120, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "embedded\n" and "no Jupyter server runs here" in done.stderr
    assert shutil.which(CLI) or Path(CLI).exists()


# -- the folder a command runs in is the job's workspace, wherever the server came from ------
def test_with_url_and_token_the_workspace_is_the_current_folder(server, tmp_path):
    done = cli(server, "run", "--", "cat", "data.txt")
    assert done.returncode == 0 and done.stdout == "from the workspace\n", done.stderr
    (server.root / "proj" / "sub").mkdir()
    deeper = json.loads(cli(server, "--json", "run", "-d", "--", "true", cwd=server.root / "proj" / "sub").stdout)
    assert deeper["spec"]["workspace"] == "proj/sub"
    by_env = cli(server, "--json", "run", "-d", "--", "true", discover=True,
                 env={"JUPYTER_JOBS_URL": server.url, "JUPYTER_JOBS_TOKEN": server.token})
    assert json.loads(by_env.stdout)["spec"]["workspace"] == "proj", by_env.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = cli(server, "run", "--", "true", cwd=elsewhere)
    assert outside.returncode == 2, outside.stderr
    assert f"{elsewhere.resolve()} is not under {server.root.resolve()}" in outside.stderr
    assert len(server.request("GET", "/jupyter-jobs/jobs")["jobs"]) == 3  # nothing ran for the refused one


def test_a_server_this_machine_does_not_list_needs_its_root_named(server, tmp_path):
    unlisted = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "another-runtime")}
    refused = cli(server, "run", "--", "true", env=unlisted)
    assert refused.returncode == 2 and "JUPYTER_JOBS_ROOT" in refused.stderr, refused.stderr
    assert cli(server, "list", env=unlisted).returncode == 0  # listing needs no folder
    named = cli(server, "run", "--", "cat", "data.txt", env={**unlisted, "JUPYTER_JOBS_ROOT": str(server.root)})
    assert named.returncode == 0 and named.stdout == "from the workspace\n", named.stderr


# -- options where people type them ----------------------------------------------------------
def test_global_options_work_after_the_subcommand(server, tmp_path):
    credentials = ["--url", server.url, "--token", server.token]
    started = cli(server, "run", "-d", "--json", *credentials, "--", "true", discover=True)
    job = json.loads(started.stdout)
    unlisted = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "none")}  # only --url can lead to the server
    listed = cli(server, "list", "--limit", "5", "--json", *credentials, discover=True, env=unlisted)
    assert json.loads(listed.stdout)["jobs"][0]["id"] == job["id"], listed.stderr
    assert json.loads(cli(server, "show", job["id"], "--json").stdout)["id"] == job["id"]
    assert json.loads(cli(server, "workflow", "list", "--json").stdout)["workflows"] == []
    assert json.loads(cli(server, "schedule", "list", "--json").stdout)["schedules"] == []
    wrong = cli(server, "list", "--url", "http://127.0.0.1:9")  # after the subcommand, it wins
    assert wrong.returncode == 6 and "cannot reach" in wrong.stderr


# -- speed -------------------------------------------------------------------------------------
HEAVY = ("jupyter_server", "tornado", "pydantic", "traitlets", "ipykernel", "IPython", "jupyter_client",
         "jupyter_jobs.app", "jupyter_jobs.domain")


def test_a_command_imports_nothing_of_the_server_side(server):
    """Finding the server imported jupyter_server's ServerApp, the client the service's settings
    (pydantic, traitlets) and ipykernel (to ask which kernel it runs in): ~2.7 s of a `jupyter
    jobs list` that now takes ~0.3."""
    done = cli(server, "list", discover=True, program=(sys.executable, "-X", "importtime", "-m", "jupyter_jobs.cli"))
    assert done.returncode == 0 and done.stdout.startswith("id"), done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not sorted(m for m in imported if m.startswith(HEAVY))


# -- following, waiting, terminals ---------------------------------------------------------------
def test_ctrl_c_detaches_from_a_followed_run_and_says_how_to_follow_or_cancel(server):
    proc = subprocess.Popen([CLI, "--url", server.url, "--token", server.token, "run", "--", "sh", "-c",
                             "echo started; sleep 60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=server.root / "proj", env=environment(server))
    try:
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    job_id = re.search(r"^job (\w+) ", err, re.M).group(1)
    assert proc.returncode == 130, err
    assert f"jupyter jobs logs -f {job_id}" in err and f"jupyter jobs cancel {job_id}" in err
    assert server.request("GET", f"/jupyter-jobs/jobs/{job_id}")["status"] == "running"
    assert cli(server, "cancel", job_id).returncode == 0


def test_ctrl_c_with_no_server_cancels_the_job_the_command_runs(tmp_path):
    env = {**environment(None), "JUPYTER_RUNTIME_DIR": str(tmp_path / "empty"), "JUPYTER_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([CLI, "run", "--", "sh", "-c", "echo started; sleep 60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "cancelled: no Jupyter server runs it" in err, err


def test_logs_follow_exits_with_the_jobs_code_and_says_how_it_ended(server):
    job = json.loads(cli(server, "--json", "run", "-d", "--", "sh", "-c", "echo bye; exit 4").stdout)
    follow = cli(server, "logs", "-f", job["id"])
    assert follow.returncode == 4 and follow.stdout == "bye\n", follow.stderr
    assert f"job {job['id']} failed" in follow.stderr and "exit 4" in follow.stderr


def test_workflow_run_wait_waits_and_exits_non_zero_when_the_run_failed(server):
    (server.root / "proj" / "ok.yaml").write_text("name: ok\njobs:\n  a: {command: echo a}\n"
                                                  "  b: {needs: a, command: echo b}\n")
    (server.root / "proj" / "bad.yaml").write_text("name: bad\njobs:\n  a: {command: exit 1}\n"
                                                   "  b: {needs: a, command: echo b}\n")
    ok = cli(server, "workflow", "run", "--wait", "ok.yaml")
    assert ok.returncode == 0 and ": succeeded" in ok.stdout.splitlines()[0], ok.stdout + ok.stderr
    bad = cli(server, "workflow", "run", "bad.yaml", "--wait", "--json")
    run = json.loads(bad.stdout)
    assert bad.returncode == 1 and run["status"] == "failed", bad.stderr
    assert {j["name"]: j["status"] for j in run["jobs"]} == {"a": "failed", "b": "skipped"}


def test_list_fits_the_terminal_width(server):
    job = json.loads(cli(server, "--json", "run", "-d", "--name", "n" * 80, "--", "true").stdout)
    narrow = cli(server, "list", env={"COLUMNS": "80"})
    assert narrow.returncode == 0 and max(map(len, narrow.stdout.splitlines())) <= 80, narrow.stdout
    assert job["id"] in narrow.stdout and "…" in narrow.stdout  # ids stay whole; long names are cut
    assert "n" * 80 in cli(server, "list", env={"COLUMNS": "200"}).stdout


@pytest.mark.parametrize("command, example", [
    ((), "jupyter jobs run -- python train.py"),
    (("run",), "jupyter jobs run --gpus 1 -- python train.py"),
    (("list",), "jupyter jobs list --status running,queued"),
    (("logs",), "jupyter jobs logs -f"),
    (("workflow", "run"), "jupyter jobs workflow run --wait"),
])
def test_help_shows_examples(command, example):
    shown = subprocess.run([CLI, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "Examples:" in shown.stdout and example in shown.stdout, shown.stdout
