"""Proof on a real NVIDIA GPU, run by scripts/gpu-check in a fresh venv made from the carried
wheels (docs/gpu-check.md): a Jupyter server with the jupyter_jobs extension, the local backend
and NVML, checked end to end, printing a table (check, result, detail):

1. /backends lists the real device(s), with the name and memory NVML gives;
2. a one-GPU job sees exactly its device (CUDA_VISIBLE_DEVICES, torch.cuda.device_count() == 1)
   and runs a matmul loop for 20 s reporting a loss; the telemetry records its GPU's utilization
   over 50 % and its memory in use rising; the job's metrics (GET .../metrics) have both;
3. a second one-GPU job submitted meanwhile waits with the GPU as its reason, then runs after;
4. a notebook job and a GPU job kernel execute torch on the device;
5. the GPU pool holds no record once everything ended.

Without a GPU it checks what it can (the package installed from the wheels, a server, /backends
agreeing with NVML that there is no GPU, a job, a notebook job and a job kernel on the CPU), says
"no NVIDIA GPU: <why>" and exits 1. Exit 0: every check passed; 2: a check failed.

Environment (set by scripts/gpu-check): GPU_CHECK_REQUIREMENTS, the pinned packages installed;
GPU_CHECK_LEFT_OUT, those left out of the wheels on purpose; GPU_CHECK_REPO, the checkout (the
package must not come from there).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

#: the waits end well inside scripts/gpu-check's own limit for the check (300 s)
DEADLINE = time.monotonic() + 260
TRAIN_SECONDS = 20
TERMINAL = ("succeeded", "failed", "cancelled", "lost")

#: the one-GPU job: the matmul loop, a loss each second, 256 MiB more held each second (NVML's
#: memory in use rises while it runs)
TRAIN = f"""
import os, time, torch
from jupyter_jobs import metrics
print('CUDA_VISIBLE_DEVICES', os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True)
print('device_count', torch.cuda.device_count(), flush=True)
assert torch.cuda.device_count() == 1, torch.cuda.device_count()
print('device_name', torch.cuda.get_device_name(0), flush=True)
a = torch.randn(8192, 8192, device='cuda')
held, step, end, next_log = [], 0, time.time() + {TRAIN_SECONDS}, 0.0
while time.time() < end:
    b = torch.tanh(a @ a / 8192)
    step += 1
    if time.time() >= next_log:
        torch.cuda.synchronize()
        held.append(torch.empty(256 << 20, dtype=torch.uint8, device='cuda'))
        metrics.log(step=step, loss=float(b.float().pow(2).mean().item()) / step)
        next_log = time.time() + 1
torch.cuda.synchronize()
print('steps', step, flush=True)
"""
SECOND = "import os, torch; print('second', os.environ.get('CUDA_VISIBLE_DEVICES'), torch.cuda.device_count())"
#: holds one more device while the check runs on a host with several (so the second job must wait)
BLOCKER = """
import os, sys, time
end = time.time() + 240
while time.time() < end and not os.path.exists(sys.argv[1]):
    time.sleep(0.2)
"""
TORCH_CELL = ("import os, torch\n"
              "x = torch.ones(1024, 1024, device='cuda')\n"
              "print('TORCH_OK', os.environ.get('CUDA_VISIBLE_DEVICES'), torch.cuda.device_count(),\n"
              "      torch.cuda.get_device_name(0), float((x @ x).sum()))")
CPU_CELL = "import os, sys\nprint('CPU_OK', os.path.basename(sys.executable), 6 * 7)"


def notebook(code: str) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": code}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def left() -> float:
    return DEADLINE - time.monotonic()


class Failed(Exception):
    """A check that cannot go on; its message is the table's detail."""


# -- the table ---------------------------------------------------------------------------------
class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, ok: Optional[bool], detail: str) -> bool:
        result = "not run" if ok is None else "ok" if ok else "FAIL"
        self.rows.append((name, result, detail))
        print(f"gpu-check: {result:7} {name}: {detail}", flush=True)
        return bool(ok)

    def print(self) -> None:
        width = max(len(r[0]) for r in [("check", "", ""), *self.rows])
        print(f"\n{'check':{width}}  result   detail")
        print(f"{'-' * width}  -------  {'-' * 40}")
        for name, result, detail in self.rows:
            print(f"{name:{width}}  {result:7}  {detail}")
        print(flush=True)

    @property
    def failed(self) -> bool:
        return any(r[1] == "FAIL" for r in self.rows)


# -- what this machine has ---------------------------------------------------------------------
def nvml_devices() -> tuple[list[dict], str]:
    """The devices NVML sees (index, name, memory) and, when there are none, why."""
    try:
        import pynvml
    except ImportError as exc:
        return [], f"nvidia-ml-py is not installed ({exc})"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"NVML could not start ({type(exc).__name__}: {exc})"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append({"index": index, "name": name.decode() if isinstance(name, bytes) else name,
                            "memory": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)})
    finally:
        pynvml.nvmlShutdown()
    driver = driver.decode() if isinstance(driver, bytes) else driver
    return devices, "" if devices else f"NVML started (driver {driver}) but found no device"


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_install(table: Table) -> None:
    """jupyter_jobs comes from the venv (the wheel), not the checkout; every requirement of what
    was installed is there but those left out on purpose."""
    from importlib.metadata import PackageNotFoundError, distribution

    import jupyter_jobs

    where = Path(jupyter_jobs.__file__).resolve()
    prefix = Path(sys.prefix).resolve()
    repo = os.environ.get("GPU_CHECK_REPO")
    problems = []
    if sys.prefix == sys.base_prefix or not where.is_relative_to(prefix):
        problems.append(f"jupyter_jobs is imported from {where.parent}, not from this venv ({prefix})")
    if repo and where.is_relative_to(Path(repo).resolve()):
        problems.append(f"jupyter_jobs is imported from the checkout ({where.parent})")
    pinned = [line.split("==")[0].strip() for line in Path(os.environ["GPU_CHECK_REQUIREMENTS"]).read_text().split()
              ] if os.environ.get("GPU_CHECK_REQUIREMENTS") else ["jupyter-jobs"]
    left_out_file = os.environ.get("GPU_CHECK_LEFT_OUT")
    left_out = {canon(n) for n in Path(left_out_file).read_text().split()} if left_out_file else set()
    missing = set()
    try:
        from packaging.requirements import Requirement
    except ImportError as exc:
        problems.append(f"packaging is missing ({exc})")
    else:
        for name in pinned:
            try:
                dist = distribution(name)
            except PackageNotFoundError:
                missing.add(canon(name))
                continue
            for text in dist.requires or []:
                req = Requirement(text)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue
                try:
                    distribution(req.name)
                except PackageNotFoundError:
                    missing.add(canon(req.name))
    if missing - left_out:
        problems.append(f"missing requirements: {', '.join(sorted(missing - left_out))}")
    detail = (f"jupyter_jobs {jupyter_jobs.__version__} in {prefix.name}/ (a fresh venv), "
              f"{len(pinned)} packages from the wheels; left out on purpose: {', '.join(sorted(left_out)) or 'none'}")
    table.add("install from the wheels", not problems, "; ".join(problems) or detail)
    if problems:
        raise Failed("the package is not the one installed from the wheels")


# -- the server --------------------------------------------------------------------------------
class Server:
    def __init__(self, tmp: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = uuid.uuid4().hex
        self.root, self.data, self.pool = tmp / "root", tmp / "data", tmp / "pool"
        self.log_path = tmp / "server.log"
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
               "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"), "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
               "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # CUDA numbers devices as NVML does, so an index means one device
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={self.port}",
             "--port-retries=0", f"--ServerApp.root_dir={self.root}", f"--IdentityProvider.token={self.token}",
             f"--JobsApp.data_dir={self.data}", f"--JobsApp.gpu_pool_dir={self.pool}",
             "--JobsApp.metrics_interval=1", "--JobsApp.kill_grace=2", "--JobsApp.default_backend=local",
             "--JobsApp.disabled_backends=docker", "--JobsApp.disabled_backends=podman",
             "--JobsApp.disabled_backends=slurm"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
        started = time.monotonic()
        while True:
            try:
                self.backends = self.call("GET", "/jupyter-jobs/backends")
                self.started_in = time.monotonic() - started
                return
            except (OSError, Failed):
                if self.proc.poll() is not None:
                    raise Failed(f"the server exited ({self.proc.returncode}): {self.log_tail()}") from None
                if time.monotonic() - started > 90:
                    raise Failed(f"the server did not answer in 90 s: {self.log_tail()}") from None
                time.sleep(0.2)

    def log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def call(self, method: str, path: str, body: Any = None, params: Optional[dict] = None,
             timeout: float = 60, raw: bool = False) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(url, method=method, data=data, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                text = reply.read()
        except urllib.error.HTTPError as exc:
            said = exc.read().decode(errors="replace")[:500]
            raise Failed(f"{method} {path}: HTTP {exc.code} {said}") from None
        if raw:
            return text.decode(errors="replace")
        return json.loads(text) if text else {}

    def submit(self, spec: dict) -> dict:
        return self.call("POST", "/jupyter-jobs/jobs", spec)

    def job(self, job_id: str) -> dict:
        return self.call("GET", f"/jupyter-jobs/jobs/{job_id}")

    def wait(self, job_id: str, statuses: tuple = TERMINAL, within: float = 120) -> dict:
        end = time.monotonic() + min(within, max(1.0, left()))
        while (job := self.job(job_id))["status"] not in statuses:
            if time.monotonic() > end:
                raise Failed(f"job {job_id} still {job['status']} ({job.get('waiting') or job.get('message')})")
            time.sleep(0.25)
        return job

    def log(self, job_id: str) -> str:
        lines = self.call("GET", f"/jupyter-jobs/jobs/{job_id}/logs", raw=True).splitlines()
        return "".join(json.loads(line).get("text", "") for line in lines if line.strip())

    def metrics(self, job_id: str) -> dict[str, dict]:
        """Every series of the job, all pages read: name -> {"steps", "values", "times"}."""
        series: dict[str, dict] = {}
        since = ""
        for _ in range(100):
            page = self.call("GET", f"/jupyter-jobs/jobs/{job_id}/metrics", params={"since": since} if since else None)
            for name, got in page["series"].items():
                mine = series.setdefault(name, {"steps": [], "values": []})
                mine["steps"] += got["steps"]
                mine["values"] += got["values"]
            if not page.get("more"):
                break
            since = page["next"]
        return series

    def kernel_specs(self) -> list[str]:
        return sorted(self.call("GET", "/api/kernelspecs")["kernelspecs"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def execute_in_kernel(server: Server, kernel_id: str, code: str, timeout: float = 90) -> tuple[str, str]:
    """(status, what it printed) of `code` run in a kernel of the server, over its websocket (the
    way a notebook in the browser runs a cell)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def run() -> tuple[str, str]:
        session = uuid.uuid4().hex
        url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?session_id={session}"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "gpu-check", "session": session,
                       "date": datetime.now(timezone.utc).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, status, idle = [], None, False
        try:
            while status is None or not idle:
                raw = await asyncio.wait_for(ws.read_message(), timeout)
                if raw is None:
                    raise Failed("the kernel's websocket closed")
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg.get("msg_type"), msg.get("content", {})
                if kind == "stream":
                    out.append(content.get("text", ""))
                elif kind == "error":
                    out.append(f"{content.get('ename')}: {content.get('evalue')}")
                elif kind == "execute_reply":
                    status = content.get("status")
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
        finally:
            ws.close()
        return status or "", "".join(out)

    return asyncio.run(asyncio.wait_for(run(), timeout + 10))


def pool_files(pool: Path) -> list[str]:
    """The pool's records (gpu-*.json: devices held) and tickets (wait-*.json: a job waiting)."""
    if not pool.is_dir():
        return []
    return sorted(str(p.relative_to(pool)) for p in pool.rglob("*.json") if p.name.startswith(("gpu-", "wait-")))


# -- the checks --------------------------------------------------------------------------------
def check_cpu(table: Table, server: Server, workspace: str) -> None:
    """What works without a GPU: a job, a notebook job and a job kernel on the local backend."""
    job = server.wait(server.submit({"command": [sys.executable, "-c", "print('cpu job', 6 * 7)"],
                                     "workspace": workspace, "name": "gpu-check: cpu job"})["id"])
    said = server.log(job["id"])
    table.add("a job (local, no GPU)", job["status"] == "succeeded" and "cpu job 42" in said,
              f"{job['status']}; printed {said.strip()[-80:]!r}")
    book = server.wait(server.submit({"notebook": "cpu.ipynb", "workspace": workspace,
                                      "name": "gpu-check: cpu notebook"})["id"])
    said = server.log(book["id"])
    table.add("a notebook job (no GPU)", book["status"] == "succeeded" and "CPU_OK" in said and "42" in said,
              f"{book['status']}: {book.get('message') or said[said.find('CPU_OK'):].strip()[:100]!r}")
    kernel_check(table, server, "jupyter-jobs-local", workspace, CPU_CELL, "a job kernel (no GPU)",
                 lambda out: "CPU_OK" in out and "42" in out, gpus=0)


def kernel_check(table: Table, server: Server, name: str, workspace: str, code: str, label: str,
                 good: Any, gpus: int) -> None:
    """Start kernel `name` as a notebook would (POST /api/kernels), run `code` in it, shut it down."""
    offered = server.kernel_specs()
    if name not in offered:
        table.add(label, False, f"kernel {name} is not offered ({', '.join(offered)})")
        return
    kernel = server.call("POST", "/api/kernels", {"name": name, "path": workspace},
                         timeout=max(10.0, min(150.0, left())))
    job: Optional[dict] = None
    try:
        running = server.call("GET", "/jupyter-jobs/jobs", params={"status": "running"})["jobs"]
        ours = [j for j in running if j.get("kind") == "kernel"]
        job = ours[0] if ours else None
        status, out = execute_in_kernel(server, kernel["id"], code)
    finally:
        server.call("DELETE", f"/api/kernels/{kernel['id']}", timeout=60)
    ended = server.wait(job["id"], within=60) if job else None
    ok = (job is not None and len(job["gpus"]) == gpus and status == "ok" and good(out)
          and ended is not None and ended["status"] in ("succeeded", "cancelled"))
    table.add(label, ok, f"kernel {name} as job {job['id'] if job else None} on GPU(s) {job['gpus'] if job else None}, "
              f"cell {status}: {out.strip()[-120:]!r}; after shut-down the job is {ended['status'] if ended else None}")


def check_gpus(table: Table, server: Server, tmp: Path, devices: list[dict]) -> None:
    """Checks 2 to 5, on the real device(s)."""
    release = tmp / "release-blockers"
    blockers = [server.submit({"command": [sys.executable, "-c", BLOCKER, str(release)], "workspace": "w",
                               "resources": {"gpus": 1}, "name": f"gpu-check: holds GPU {i}"})["id"]
                for i in range(len(devices) - 1)]  # on a host with several GPUs, all but one held
    for blocker in blockers:
        server.wait(blocker, ("running", *TERMINAL), within=120)
    first = server.submit({"command": [sys.executable, "train.py"], "workspace": "w", "resources": {"gpus": 1},
                           "name": "gpu-check: train"})
    first = server.wait(first["id"], ("running", *TERMINAL), within=120)
    # 3. a second one-GPU job, submitted while the first runs, waits for the GPU
    second = server.submit({"command": [sys.executable, "-c", SECOND], "workspace": "w", "resources": {"gpus": 1},
                            "name": "gpu-check: second"})
    end = time.monotonic() + 20
    while True:
        waiting = server.job(second["id"])
        reason = waiting.get("waiting") or ""
        if waiting["status"] != "queued" or "GPU" in reason or time.monotonic() > end:
            break
        time.sleep(0.25)
    first_now = server.job(first["id"])["status"]
    table.add("3. second job waits for the GPU", waiting["status"] == "queued" and "GPU" in reason,
              f"{waiting['status']} while the first is {first_now}: {reason or waiting.get('message')}")
    # 2. the one-GPU job: its device, its loss, its telemetry
    done = server.wait(first["id"], within=TRAIN_SECONDS + 120)
    release.touch()
    said = server.log(first["id"])
    gpu = done["gpus"][0] if len(done["gpus"]) == 1 else None
    seen = dict(re.findall(r"^(CUDA_VISIBLE_DEVICES|device_count|device_name|steps) (.*)$", said, re.M))
    name = next((d["name"] for d in devices if d["index"] == gpu), None)
    ok = (done["status"] == "succeeded" and gpu is not None and seen.get("CUDA_VISIBLE_DEVICES") == str(gpu)
          and seen.get("device_count") == "1")
    table.add("2. one-GPU job sees its device", ok,
              f"{done['status']} on GPU {done['gpus']}: CUDA_VISIBLE_DEVICES={seen.get('CUDA_VISIBLE_DEVICES')}, "
              f"device_count={seen.get('device_count')}, torch says {seen.get('device_name')!r} (NVML: {name!r}), "
              f"{seen.get('steps')} steps" + ("" if ok else f"; message: {done.get('message')}; log: {said[-300:]!r}"))
    series = server.metrics(first["id"])
    loss = series.get("loss", {}).get("values", [])
    util = series.get(f"gpu.{gpu}.util", {}).get("values", [])
    memory = series.get(f"gpu.{gpu}.memory_used", {}).get("values", [])
    table.add("2. loss metric", len(loss) >= TRAIN_SECONDS // 2,
              f"{len(loss)} points of 'loss' (last {loss[-1] if loss else None})")
    rising = len(memory) >= 3 and memory[-1] > memory[0] + (1 << 30)
    table.add("2. telemetry: GPU utilization", bool(util) and max(util) > 50,
              f"gpu.{gpu}.util: {len(util)} samples, max {max(util) if util else None} %")
    table.add("2. telemetry: GPU memory rising", rising,
              f"gpu.{gpu}.memory_used: {len(memory)} samples, "
              f"{memory[0] / 2**30 if memory else 0:.1f} -> {memory[-1] / 2**30 if memory else 0:.1f} GiB "
              f"(GET .../metrics: {', '.join(n for n in sorted(series) if n.startswith('gpu.'))})")
    second = server.wait(second["id"], within=120)
    said = server.log(second["id"])
    after = (second.get("started_at") and done.get("finished_at")
             and datetime.fromisoformat(second["started_at"]) >= datetime.fromisoformat(done["finished_at"]))
    table.add("3. second job runs after", second["status"] == "succeeded" and bool(after) and " 1" in said,
              f"{second['status']}, started {second.get('started_at')} (the first ended {done.get('finished_at')}) "
              f"on GPU {second['gpus']}: {said.strip()[-60:]!r}")
    for blocker in blockers:
        server.wait(blocker, within=60)
    # 4. a notebook job and a GPU kernel run torch on the device
    book = server.wait(server.submit({"notebook": "gpu.ipynb", "workspace": "w", "resources": {"gpus": 1},
                                      "name": "gpu-check: notebook"})["id"], within=180)
    said = server.log(book["id"])
    table.add("4. notebook job runs torch", book["status"] == "succeeded" and "TORCH_OK" in said
              and "1073741824" in said, f"{book['status']} on GPU {book['gpus']}: "
              f"{book.get('message') or said[said.find('TORCH_OK'):].strip()[:120]!r}")
    kernel_check(table, server, "jupyter-jobs-local-gpu", "w", TORCH_CELL, "4. GPU kernel runs torch",
                 lambda out: "TORCH_OK" in out and "1073741824" in out, gpus=1)
    # 5. nothing left in the pool
    end = time.monotonic() + 20
    while (files := pool_files(server.pool)) and time.monotonic() < end:
        time.sleep(0.5)
    in_use = [g.get("in_use") for g in server.call("GET", "/jupyter-jobs/backends")["gpus"]]
    table.add("5. the pool holds no record", not files and not any(in_use),
              f"{len(files)} record(s) left {files[:3]}; in use per GPU: {in_use}")


def main() -> int:
    table = Table()
    devices, why = nvml_devices()
    server: Optional[Server] = None
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as name:
            tmp = Path(name)
            try:
                check_install(table)
                work = tmp / "root" / "w"
                work.mkdir(parents=True)
                (work / "train.py").write_text(TRAIN)
                (work / "gpu.ipynb").write_text(json.dumps(notebook(TORCH_CELL)))
                (work / "cpu.ipynb").write_text(json.dumps(notebook(CPU_CELL)))
                server = Server(tmp)
                local = next((b for b in server.backends["backends"] if b["name"] == "local"), {})
                table.add("server starts", bool(local.get("available")),
                          f"in {server.started_in:.1f} s; backends: "
                          + ", ".join(f"{b['name']} ({'up' if b['available'] else 'down'})"
                                      for b in server.backends["backends"]))
                listed = [{k: g.get(k) for k in ("index", "name", "memory")} for g in server.backends["gpus"]]
                agree = listed == devices
                table.add("1. /backends lists the GPU(s)" if devices else "1. /backends: no GPU, as NVML says",
                          agree, f"{len(listed)} GPU(s): " + ("; ".join(
                              f"{g['index']}: {g['name']}, {(g['memory'] or 0) / 2**30:.1f} GiB" for g in listed)
                              or "none") + ("" if agree else f" (NVML: {devices or why})"))
                offered = server.kernel_specs()
                wanted = {"jupyter-jobs-local"} | ({"jupyter-jobs-local-gpu"} if devices else set())
                table.add("job kernels offered", wanted <= set(offered), ", ".join(offered))
                check_cpu(table, server, "w")
                if devices:
                    check_gpus(table, server, tmp, devices)
                else:
                    for label in ("2. one-GPU job, loss, telemetry", "3. second job waits, then runs",
                                  "4. notebook job and GPU kernel run torch", "5. the pool holds no record"):
                        table.add(label, None, "no GPU")
            except Failed as exc:
                table.add("error", False, str(exc))
            except Exception as exc:  # the table is printed whatever happens
                table.add("error", False, f"{type(exc).__name__}: {exc}")
            finally:
                if server is not None:
                    server.stop()
                    if table.failed:
                        print(f"gpu-check: the server's last lines: {server.log_tail(20)}")
    finally:
        table.print()
    if table.failed:
        print("gpu-check: FAILED: " + "; ".join(r[0] for r in table.rows if r[1] == "FAIL"), flush=True)
        return 2
    if not devices:
        print(f"no NVIDIA GPU: {why}; only the checks above could run", flush=True)
        return 1
    print(f"gpu-check: all checks passed on {len(devices)} GPU(s): {', '.join(d['name'] for d in devices)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
