"""The %%job magic in a real kernel (jupyter_client) against a real Jupyter server process."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_jobs.kernel.display import format_duration, status_text
from support import Kernel, docker_problem, log_text, require


@pytest.fixture
def server(server_process):
    srv = server_process().start()
    (srv.root / "proj").mkdir()
    (srv.root / "proj" / "helper.py").write_text("GREETING = 'hello from the workspace'\n")
    return srv


@pytest.fixture
def kernel(server):
    env = {**os.environ, "JUPYTER_JOBS_URL": server.url + "/", "JUPYTER_JOBS_TOKEN": server.token,
           "JUPYTER_JOBS_ROOT": str(server.root)}
    k = Kernel(server.root / "proj", env)
    assert k.run("%load_ext jupyter_jobs").error is None
    yield k
    k.stop()


def job_id_of(run) -> str:
    for text in run.displays():
        if "job " in text:
            return text.split("job ", 1)[1].split()[0]
    raise AssertionError(f"no job in {run.displays()}")


def test_output_streams_into_the_cell_as_it_happens(kernel, server):
    run = kernel.run("%%job --name streamed\nimport time, helper\nprint(helper.GREETING, flush=True)\n"
                     "time.sleep(1.5)\nprint('second', flush=True)\n")
    assert run.error is None
    stdout = run.streams("stdout")
    assert run.text("stdout") == "hello from the workspace\nsecond\n"
    first_at = next(t for t, text in stdout if "hello" in text)
    second_at = next(t for t, text in stdout if "second" in text)
    assert second_at - first_at > 1.0, "the first line must arrive while the job still runs"
    status = run.displays()[-2] if run.displays()[-1].startswith("<Job") else run.displays()[-1]
    assert "succeeded" in status and "local" in status and "exit 0" in status
    assert run.displays()[-1].startswith("<Job ") and "succeeded" in run.displays()[-1]


def test_stderr_stays_stderr_and_failure_raises(kernel):
    run = kernel.run("%%job\nimport sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(3)\n")
    assert run.text("stdout") == "to out\n" and run.text("stderr") == "to err\n"
    assert run.error and run.error["ename"] == "JobFailed" and "exited with code 3" in run.error["evalue"]
    quiet = kernel.run("%%job --no-raise\nraise SystemExit(4)\n")
    assert quiet.error is None and "exit 4" in " ".join(quiet.displays())


def test_detach_then_wait(kernel):
    run = kernel.run("%%job --detach -n bg\nimport time\ntime.sleep(1)\nprint('done in background')\n")
    assert run.error is None and "job " in run.displays()[0]
    assert run.text() == ""  # nothing streamed: it returned at once
    rooms = [c["data"] for _, kind, c in run.messages if kind == "display_data" and c["data"].get("text/plain") == ""]
    assert rooms == [{"text/plain": ""}]  # no cell follows it: JupyterLab notifies its end
    after = kernel.run("j = _\nj.wait(30)\nprint(j.status, j.exit_code, repr(j.logs()))")
    assert after.error is None
    assert after.text() == "succeeded 0 'done in background\\n'\n"


def test_a_cell_job_keeps_the_cell_as_it_was_written(kernel, server):
    """The job records its `%%job` cell as the user wrote it (quotes and all), to show and copy
    back as a cell; `command` is what runs."""
    cell = "%%job --detach -n quoted\nprint('it\\'s \"quoted\"', flush=True)\n"
    run = kernel.run(cell)
    assert run.error is None, run.error
    job = server.request("GET", f"/jupyter-jobs/jobs/{job_id_of(run)}")
    assert job["spec"]["cell"] == cell
    assert job["spec"]["command"][1:] == ["-c", cell.split("\n", 1)[1]]
    assert server.wait(job["id"])["status"] == "succeeded"
    rerun = server.request("POST", f"/jupyter-jobs/jobs/{job['id']}/rerun")
    assert rerun["spec"]["cell"] == cell  # a rerun is the same cell


def test_artifacts_are_listed_and_downloadable(kernel, server):
    run = kernel.run("%%job\nimport os\nopen(os.environ['JOB_ARTIFACTS_DIR'] + '/model.txt', 'w').write('w=42')\n"
                     "open(os.environ['JOB_ARTIFACTS_DIR'] + '/metrics.json', 'w').write('{\"loss\": 0.5}')\n")
    assert run.error is None and "artifacts: metrics.json, model.txt" in " ".join(run.displays())
    job_id = job_id_of(run)
    assert kernel.run("j = _").error is None
    listed = kernel.run(f"%job artifacts {job_id}")
    assert "model.txt" in " ".join(listed.displays()) + listed.text()
    got = kernel.run(f"print(j.artifacts)\np = j.download('model.txt', '{server.root}/{job_id}.txt')\n"
                     f"print(open(p).read())\nprint(open(j.download('metrics.json', '{server.root}')).read())")
    assert got.text() == "['metrics.json', 'model.txt']\nw=42\n{\"loss\": 0.5}\n"


def test_interrupt_cancels_the_job(kernel, server):
    interrupted = []

    def on_message(msg):
        if msg["msg_type"] == "stream" and "started" in msg["content"]["text"] and not interrupted:
            interrupted.append(time.monotonic())
            kernel.km.interrupt_kernel()

    run = kernel.run("%%job\nimport time\nprint('started', flush=True)\ntime.sleep(60)\n", on_message=on_message)
    assert interrupted and run.error and run.error["ename"] == "JobInterrupted"
    job_id = job_id_of(run)
    shown = run.text() + "\n" + "\n".join(run.error["traceback"])  # all the cell shows but its status line
    assert "Traceback" not in shown and "http" not in shown
    assert [line for line in shown.splitlines() if "cancel" in line] == [f"Job {job_id} cancelled (interrupted)."]
    assert "cancelled" in run.displays()[-1] and "exit" not in run.displays()[-1]  # no "exit 143"
    jobs = server.request("GET", "/jupyter-jobs/jobs")["jobs"]
    assert jobs[0]["status"] == "cancelled"


def test_status_line_sits_above_the_output(kernel):
    """Created before the first output, then only updated in place: it never lands mid-output."""
    run = kernel.run("%%job\nimport time\nfor i in range(3):\n    print('step', i, flush=True)\n"
                     "    time.sleep(1)\n")
    assert run.error is None
    kinds = [kind for _, kind, _ in run.messages]
    displays = [(kind, c) for _, kind, c in run.messages if kind in ("display_data", "update_display_data")]
    assert displays[0][0] == "display_data" and kinds.index("display_data") < kinds.index("stream")
    display_id = displays[0][1]["transient"]["display_id"]
    shown = [(kind, c) for kind, c in displays if c["transient"]["display_id"] == display_id]
    assert len(shown) > 2 and all(kind == "update_display_data" for kind, _ in shown[1:])
    texts = [c["data"]["text/plain"] for _, c in shown]
    running = [t for t in texts if " running" in t]
    assert running and all(re.search(r" running \d+:\d\d · local", t) for t in running), texts
    assert not any("finished" in t for t in texts)
    assert re.search(r" succeeded in 0:0[2-9] · local · exit 0", texts[-1]), texts[-1]


def test_handle_shows_the_current_state(kernel):
    """A detached job's handle, shown after it ended, says so (and follow() leaves the final record)."""
    started = kernel.run("%job run --detach sleep 1")
    assert started.error is None and "succeeded" not in started.displays()[-1]
    followed = kernel.run("j = _\nj.follow()")
    shown = [t for t in followed.displays() if t.startswith("<Job")]  # the detached line may update too
    assert followed.error is None and re.fullmatch(r"<Job \w+ succeeded on local exit=0>", shown[-1]), shown
    assert kernel.run("print(j.info['finished_at'] is not None, j.exit_code)").text() == "True 0\n"
    kernel.run("%job run --detach sleep 1")
    later = kernel.run("import time\nk = _\ntime.sleep(4)\nk")
    shown = [t for t in later.displays() if t.startswith("<Job")]
    assert later.error is None and re.fullmatch(r"<Job \w+ succeeded on local exit=0>", shown[-1]), shown


def test_durations_are_formatted_as_in_the_panel():
    """Floor seconds, m:ss under an hour, XhYYm from one: the panel's format, never rounded."""
    assert [format_duration(s) for s in (None, 0, 0.99, 59.999, 61.5, 3599.9, 3600, 3659.9, 7322, 36000)] == \
        ["—", "0:00", "0:00", "0:59", "1:01", "59:59", "1h00m", "1h00m", "2h02m", "10h00m"]


def test_status_text_says_running_or_how_it_ended():
    now = datetime.now(timezone.utc)
    job = {"id": "abc", "backend": "local", "started_at": (now - timedelta(seconds=5.7)).isoformat(),
           "finished_at": None, "status": "running", "exit_code": None, "message": None}
    assert status_text(job) == "▶ job abc running 0:05 · local"
    ended = {**job, "finished_at": (now - timedelta(seconds=2.1)).isoformat()}
    assert status_text({**ended, "status": "failed", "exit_code": 3}) == "✘ job abc failed after 0:03 · local · exit 3"
    cancelled = {**ended, "status": "cancelled", "exit_code": 143, "message": "cancelled by the user"}
    assert status_text(cancelled) == "■ job abc cancelled after 0:03 · local · cancelled by the user"
    assert status_text({**job, "status": "queued", "started_at": None}) == "⏳ job abc queued · local"


def test_line_magics_print_without_echoing_a_value(kernel):
    """What they print is the answer; a returned dict or list would be echoed under it."""
    for line in ("%job backends", "%job config --name quiet", "%job list"):
        run = kernel.run(line)
        assert run.error is None and run.text() and not [k for _, k, _ in run.messages if k == "execute_result"]
    assert "local" in kernel.run("%job backends").text()
    job_id = job_id_of(kernel.run("%job run true"))
    for line in (f"%job artifacts {job_id}", f"%job logs {job_id}"):
        run = kernel.run(line)
        assert run.error is None and not [k for _, k, _ in run.messages if k == "execute_result"]


def test_line_magics(kernel, server):
    first = kernel.run("%job run -n listed echo from-run")
    assert first.error is None and first.text() == "from-run\n"
    job_id = job_id_of(first)
    listing = kernel.run("%job list")
    assert job_id in listing.text() and "succeeded" in listing.text()
    assert kernel.run(f"%job logs {job_id}").text() == "from-run\n"
    assert "echo from-run" in kernel.run(f"%job show {job_id}").text()
    long = kernel.run("%job run --detach sleep 30")
    long_id = job_id_of(long)
    cancelled = kernel.run(f"%job cancel {long_id}")
    assert "cancelled" in cancelled.text() and "exit" not in cancelled.text()
    follow = kernel.run(f"%job logs -f {job_id}")
    assert follow.text() == "from-run\n"


def test_config_defaults_and_help(kernel, server):
    assert kernel.run("%job config --name defaulted -e COLOR=blue").error is None
    run = kernel.run("%%job\nimport os\nprint(os.environ['COLOR'], os.environ['JOB_NAME'])\n")
    assert run.text() == "blue defaulted\n"
    helped = kernel.run("%job --help")
    assert "run" in helped.text() and "config" in helped.text()
    doc = kernel.run("print(get_ipython().find_cell_magic('job').__doc__)")
    assert "--gpus" in doc.text() and "--detach" in doc.text() and "--no-raise" in doc.text()


def test_clear_errors(kernel, server):
    bad_option = kernel.run("%%job --gpus many\nprint(1)\n")
    assert "UsageError" in bad_option.text("stderr") and "--gpus: invalid int value: 'many'" in bad_option.text()
    unknown = kernel.run("%%job --backend nowhere\nprint(1)\n")
    assert unknown.error and unknown.error["ename"] == "JobsError" and "unknown backend 'nowhere'" in \
        unknown.error["evalue"]
    too_many = kernel.run("%%job --gpus 4\nprint(1)\n")
    assert too_many.error and "GPU" in too_many.error["evalue"]
    bogus = kernel.run("%job list --status bogus")
    assert bogus.error and "status: unknown status 'bogus'" in bogus.error["evalue"]


def test_service_unreachable_is_said_plainly(server):
    env = {**os.environ, "JUPYTER_JOBS_URL": "http://127.0.0.1:9/", "JUPYTER_JOBS_TOKEN": "x",
           "JUPYTER_JOBS_ROOT": str(server.root)}
    k = Kernel(server.root / "proj", env)
    try:
        run = k.run("%load_ext jupyter_jobs\nget_ipython().run_cell_magic('job', '', 'print(1)')")
        assert run.error and "cannot reach the jupyter_jobs service" in run.error["evalue"]
    finally:
        k.stop()


def test_plain_ipython_runs_an_embedded_service(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_JOBS_")}
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    k = Kernel(folder, env)
    try:
        run = k.run("%load_ext jupyter_jobs\n")
        assert run.error is None
        run = k.run("%%job\nprint('embedded', flush=True)\n")
        assert run.error is None and run.text() == "embedded\n"
        listing = k.run("%job list")
        assert "succeeded" in listing.text()
        bogus = k.run("%job list --status bogus")  # the same 400 as over REST (test_clear_errors)
        assert bogus.error and bogus.error["ename"] == "JobsError"
        assert "status: unknown status 'bogus'" in bogus.error["evalue"]
    finally:
        k.stop()
    assert (tmp_path / "data" / "jupyter_jobs" / "jobs.db").exists()  # the same history a server would use


def test_docker_cell(kernel, server):
    require("docker", docker_problem())
    run = kernel.run("%%job --backend docker --image jupyter-jobs/python:test\nimport os, helper\n"
                     "print(helper.GREETING, os.getcwd())\n")
    assert run.error is None and run.text() == "hello from the workspace /workspace\n"
    assert "docker" in " ".join(run.displays())


def test_kernel_started_by_the_server_finds_it_unconfigured(server):
    """A kernel launched through the server's own API inherits the URL and a credential."""
    import asyncio

    from tornado.websocket import websocket_connect

    async def main() -> str:
        kernel = server.request("POST", "/api/kernels", {"name": "python3", "path": "proj"})
        ws = await websocket_connect(f"ws://127.0.0.1:{server.port}/api/kernels/{kernel['id']}/channels"
                                     f"?token={server.token}")
        msg_id = "magic-1"
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t", "session": "s",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": "import os\nassert os.environ['JUPYTER_JOBS_URL']\n%load_ext jupyter_jobs\n"
                                "get_ipython().run_cell_magic('job', '', 'print(\"via the server\")')",
                        "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
        }))
        out = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            if msg["msg_type"] == "error":
                out += "ERROR " + msg["content"]["evalue"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        ws.close()
        return out

    assert asyncio.run(main()) == "via the server\n"
    jobs = server.request("GET", "/jupyter-jobs/jobs")["jobs"]
    assert jobs[0]["status"] == "succeeded" and log_text(server.logs(jobs[0]["id"])) == "via the server\n"


METRICS_CELL = ("%%job\nimport time\nfrom jupyter_jobs import metrics\n"
                "for i in range(4):\n    metrics.log(step=i, loss=1 / (i + 1), total_steps=3)\n    time.sleep(0.6)\n")


def test_status_widget_progress_and_live_chart(kernel):
    """In a kernel the status is a widget with a progress bar (from the job's step and
    total_steps), and once the job reports metrics a chart output appears, naming the job (and
    saying the cell follows it: JupyterLab then does not notify its end). total_steps is the
    bar's, not the chart's."""
    run = kernel.run(METRICS_CELL)
    assert run.error is None
    displays = [c for _, kind, c in run.messages if kind in ("display_data", "update_display_data")]
    status = displays[0]
    assert "application/vnd.jupyter.widget-view+json" in status["data"]
    model = status["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    states = [c["data"]["state"] for _, kind, c in run.messages
              if kind in ("comm_open", "comm_msg") and "state" in c.get("data", {})]
    bars = [s["value"] for s in states if "value" in s and isinstance(s["value"], float)]
    assert bars and bars[-1] == 1.0 and any(0 < v < 1 for v in bars), bars  # it moved, then was full
    assert any(s.get("children") for s in states) and model  # the box holding line and bar
    chart_id = displays[1]["transient"]["display_id"]
    charts = [c for c in displays if c["transient"]["display_id"] == chart_id]
    following = {"job_id": job_id_of(run), "following": True}
    assert charts[0]["data"] == {"application/vnd.jupyter-jobs.metrics+json": following, "text/plain": ""}
    final = charts[-1]["data"]
    job_id = job_id_of(run)
    assert final["application/vnd.jupyter-jobs.metrics+json"] == {"job_id": job_id, "following": True}
    assert final["text/plain"] == "metrics: loss 0.25 (step 3)"
    got = kernel.run("j = _\nm = j.metrics()\nprint(m['loss']['steps'], m['loss']['values'][-1])\n"
                     "df = j.metrics('loss', as_frame=True)\nprint(list(df.columns), df.index.name, len(df))")
    assert got.error is None, got.error
    assert got.text() == "[0, 1, 2, 3] 0.25\n['loss'] step 4\n"


def test_text_stands_in_for_the_widget_and_chart_under_nbclient(server, tmp_path):
    """nbclient renders no widgets: the saved notebook holds the final status line and the
    metrics summary as text."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext jupyter_jobs"),
                                         nbformat.v4.new_code_cell(METRICS_CELL)])
    env = {"JUPYTER_JOBS_URL": server.url + "/", "JUPYTER_JOBS_TOKEN": server.token,
           "JUPYTER_JOBS_ROOT": str(server.root)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(server.root / "proj")}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    texts = [o["data"]["text/plain"] for o in nb.cells[1].outputs if o.get("output_type") == "display_data"]
    assert any(re.search(r"succeeded in 0:0\d · local · exit 0", t) for t in texts), texts
    assert "metrics: loss 0.25 (step 3)" in texts


def test_workflow_cell_and_file(kernel, server):
    """%%workflow runs the cell's YAML: a table of its jobs updates in place, --follow streams
    one job's output, the value is a Workflow handle; %job workflow run does the same from a file."""
    run = kernel.run("%%workflow --follow report\njobs:\n"
                     "  make:\n    command: echo made > \"$JOB_ARTIFACTS_DIR/a.txt\"\n"
                     "  report:\n    needs: make\n    command: cat \"$JOB_INPUTS_DIR/make/a.txt\"\n")
    assert run.error is None, run.error
    assert run.text("stdout") == "made\n"
    tables = [t for t in run.displays() if t.startswith("workflow ")]
    assert tables[-1].splitlines()[0].endswith(": succeeded")
    assert re.search(r"^  report\s+succeeded\s+\w+$", tables[-1], re.M)
    assert re.fullmatch(r"<Workflow w\w+ workflow succeeded: 2 succeeded>", run.displays()[-1])
    (server.root / "proj" / "flow.yaml").write_text("name: from-file\njobs:\n  bad: {command: exit 2}\n"
                                                    "  after: {needs: bad, command: echo never}\n")
    failed = kernel.run("%job workflow run flow.yaml")
    assert failed.error and failed.error["ename"] == "WorkflowFailed" and "failed" in failed.error["evalue"]
    shown = kernel.run("%job workflow show " + failed.error["evalue"].split()[2])
    assert "after" in shown.text() and "skipped" in shown.text()
    bad = kernel.run("%%workflow\njobs:\n  a: {command: echo, needs: [ghost]}\n")
    assert bad.error and "no job 'ghost'" in bad.error["evalue"]


def test_named_workflows_from_the_magic(kernel, server):
    """%job workflow save NAME FILE keeps the next version; start runs it with inputs, its table
    updating in place; versions lists them; a bad input is the server's 400, said in one line."""
    (server.root / "proj" / "greet.yaml").write_text(
        "inputs: {who: {type: string, default: world}}\njobs:\n  say: {command: 'echo hello ${{ inputs.who }}'}\n")
    saved = kernel.run("%job workflow save greet greet.yaml")
    assert saved.error is None and saved.text() == "greet version 1 saved\n", saved.text()
    run = kernel.run("%job workflow start greet -i who=ada --follow say")
    assert run.error is None, run.error
    assert run.text("stdout") == "hello ada\n"
    assert [t for t in run.displays() if t.startswith("workflow ")][-1].splitlines()[0].endswith(": succeeded")
    versions = kernel.run("%job workflow versions greet")
    assert versions.text().startswith("greet v1 · saved ") and versions.text().endswith(" · workspace proj\n")
    bad = kernel.run("%job workflow start greet -i whom=ada")
    assert "not an input this workflow declares" in bad.text() + str(bad.error)


def test_a_sweep_from_a_cell_marks_the_best_combination(kernel):
    run = kernel.run("%%job --sweep lr=0.1,0.5 --sweep batch=8 --sweep-metric loss:min\n"
                     "import os\nfrom jupyter_jobs import metrics\n"
                     "metrics.log(step=1, loss=1 - float(os.environ['MATRIX_LR']) + int(os.environ['MATRIX_BATCH']))\n")
    assert run.error is None, run.error
    table = [t for t in run.displays() if t.startswith("workflow ")][-1]
    lines = table.splitlines()
    assert lines[0].endswith("sweep: succeeded") and lines[1].split()[:3] == ["job", "status", "id"]
    best = next(line for line in lines if line.startswith("* "))
    assert best.split()[1] == "cell[lr=0.5,batch=8]" and best.split()[-1] == "8.5"
    assert any(line.split()[0] == "cell[lr=0.1,batch=8]" and line.split()[-1] == "8.9" for line in lines)
    html = [c["data"]["text/html"] for _, kind, c in run.messages
            if kind in ("display_data", "update_display_data") and "text/html" in c["data"]][-1]
    starred = re.search(r'<tr class="jupyter-jobs-best"[^>]*><td>(.*?)</td><td><code>(.*?)</code>', html)
    assert starred and starred.group(2) == "cell[lr=0.5,batch=8]", html  # a visible star, saying why
    assert "\u2605" in starred.group(1) and 'title="the best by loss:min"' in starred.group(1)
    assert html.count("\u2605") == 1
    kept = kernel.run("print(_._service.workflow(_.id)['best'])").text().strip()
    assert kept == "loss:min"  # kept with the run: JupyterLab's run tab stars the best too
    bad = kernel.run("%%job --sweep lr\nprint(1)\n")  # a UsageError: one line, nothing submitted
    assert "--sweep takes NAME=V1,V2" in bad.text() + str(bad.error)


def test_a_notebook_runs_as_a_job_with_parameters_from_the_line(kernel, server):
    from test_notebook_jobs import notebook

    notebook(server.root / "proj" / "sub" / "train.ipynb", 'print(f"lr={lr!r} epochs={epochs!r}")',
             parameters="lr = 0.1\nepochs = 1\nname = 'x'")
    run = kernel.run("%job notebook sub/train.ipynb -p lr=0.01 -p epochs=3 --name nb")
    assert run.error is None, run.error
    assert "lr=0.01 epochs=3\n" in run.text("stdout") and "[jupyter_jobs] cell 3/3" in run.text("stdout")
    job = json.loads(kernel.run("import json; print(json.dumps(_.info['spec']))").text("stdout"))
    assert job["notebook"] == "sub/train.ipynb" and job["parameters"] == {"lr": 0.01, "epochs": 3}
    assert server.request("GET", f"/jupyter-jobs/jobs/{job_id_of(run)}")["origin"].startswith("kernel:")
    shown = kernel.run(f"%job show {job_id_of(run)}").text("stdout")
    assert "notebook: sub/train.ipynb -p lr=0.01 -p epochs=3" in shown
    bad = kernel.run("%job notebook sub/train.ipynb -p 1x=2")
    assert "NAME=VALUE" in bad.text() + str(bad.error)


def test_a_cell_serves_a_port_and_the_kernel_reaches_it(kernel):
    """`%%job --expose PORT:NAME`: the status line names the endpoint; `job.endpoint(name, path)`
    is a URL that a plain urlopen can GET: the endpoint's key is in it, no other credential."""
    run = kernel.run("%%job --detach --expose 8000:files\nimport http.server, os\n"
                     "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT_FILES'])),"
                     " http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    assert run.error is None, run.error
    reached = kernel.run(
        "import time, urllib.request\nj = _\ndeadline = time.monotonic() + 30\n"
        "while j.info['endpoints'][0]['state'] != 'ready' and time.monotonic() < deadline:\n    time.sleep(0.2)\n"
        "print(urllib.request.urlopen(j.endpoint('files', 'helper.py')).read().decode(), end='')\n"
        "print(j.endpoint('files'))\nj.cancel()\n")
    assert reached.error is None, reached.error
    lines = reached.text().splitlines()
    assert lines[0] == "GREETING = 'hello from the workspace'"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/jupyter-jobs/ep/[a-z2-7]{32}/", lines[1]), lines
    bad = kernel.run("j.endpoint('nope')")
    assert bad.error and "exposes no endpoint 'nope'" in bad.error["evalue"]


def test_a_deployment_from_the_magic(kernel, server):
    """%job deploy serves a command as a deployment and prints it once ready; %job deployment
    shows, scales and deletes it; a bad replica count is one line."""
    from test_deployments import APP

    (server.root / "proj" / "app.py").write_text(APP)
    made = kernel.run("%job deploy hello --expose 8000:web:/health --wait -- python3 app.py")
    assert made.error is None, made.error
    assert made.text().startswith("hello v1: ready\n  1 of 1 ready"), made.text()
    scaled = kernel.run("%job deployment scale hello 2")
    assert "replicas 2-2" in scaled.text(), scaled.text()
    bad = kernel.run("%job deployment scale hello lots")
    assert "--replicas takes MIN or MIN:MAX" in bad.text() + str(bad.error)
    gone = kernel.run("%job deployment delete hello")
    assert gone.text() == "deployment hello deleted\n"
    listed = kernel.run("%job deployment list")
    assert listed.text() == "no deployments\n"
