"""A job kernel's start, to the first execute_reply of `1+1`:
- through a running server's REST API and kernel websocket (POST /api/kernels to the reply), the
  local GPU job kernel (a job that waits in the queue and GPU pool, then runs ipykernel) against the
  plain ipykernel (`python3`) on the same server as the baseline. Target: within 1.3x.
- the docker job kernel the same way, against `docker run` of the same image with ipykernel's own
  start and a kernel client on its published ports as the baseline. Target: within 1.2x.
Each pair interleaved in the same run."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import parser, require_part, server, table

IMAGE = "jupyter-jobs/notebook:test"


async def first_reply(srv, name: str) -> float:
    """Seconds from asking for a kernel to its first execute_reply; the kernel is shut down after."""
    import websockets

    start = time.perf_counter()
    kernel = await asyncio.to_thread(srv.request, "POST", "/api/kernels", {"name": name})
    url = f"ws://127.0.0.1:{srv.port}/api/kernels/{kernel['id']}/channels?token={srv.token}"
    try:
        async with websockets.connect(url, max_size=None) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench", "session": "b",
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": "1+1", "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("msg_type") == "execute_reply" and reply["parent_header"].get("msg_id") == msg_id:
                    elapsed = time.perf_counter() - start
                    assert reply["content"]["status"] == "ok", reply
                    return elapsed
    finally:
        await asyncio.to_thread(srv.request, "DELETE", f"/api/kernels/{kernel['id']}")


def docker_run_reply() -> float:
    """The baseline: `docker run` of the image with ipykernel on published loopback ports, a
    kernel client from this host, to its first execute_reply; the container removed after."""
    import subprocess

    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    with tempfile.TemporaryDirectory() as tmp:
        path, info = write_connection_file(f"{tmp}/kernel.json", ip="0.0.0.0")
        ports = [info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb")]
        name = f"bench-kernel-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-v", f"{tmp}:/conn:ro",
                        *[a for p in ports for a in ("-p", f"127.0.0.1:{p}:{p}")], IMAGE, "python3", "-m",
                        "ipykernel_launcher", "-f", "/conn/kernel.json"], check=True, capture_output=True)
        try:
            client = BlockingKernelClient(connection_file=path)
            client.load_connection_file()
            client.ip = "127.0.0.1"
            # The heartbeat's default 1 s would call a kernel still starting (a loaded machine) dead;
            # the docker job kernel is judged by its container, so the baseline waits the same way.
            client.hb_channel.time_to_dead = 60.0
            client.start_channels()
            client.wait_for_ready(timeout=60)
            reply = client.execute_interactive("1+1", timeout=60, output_hook=lambda msg: None)
            elapsed = time.perf_counter() - start
            assert reply["content"]["status"] == "ok", reply
            client.stop_channels()
            return elapsed
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 2 if args.quick else 5
    results: dict[str, list[float]] = {"python3: plain ipykernel (baseline)": [],
                                       "jupyter-jobs-local-gpu: a job kernel holding a GPU": []}
    with tempfile.TemporaryDirectory() as pool, server(["--JobsApp.gpus=1", f"--JobsApp.gpu_pool_dir={pool}/gpus",
                                                        "--JobsApp.metrics_interval=0"]) as srv:
        for _ in range(runs):  # interleaved: both see the same machine
            results["python3: plain ipykernel (baseline)"].append(asyncio.run(first_reply(srv, "python3")))
            results["jupyter-jobs-local-gpu: a job kernel holding a GPU"].append(
                asyncio.run(first_reply(srv, "jupyter-jobs-local-gpu")))
    show(results, runs, 1.3)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from support import docker_problem

    require_part(docker_problem(), "bench_kernels.py (docker)")
    docker: dict[str, list[float]] = {"docker run + ipykernel (baseline)": [],
                                      "jupyter-jobs-docker: a docker job kernel": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "kernels.py"
        config.write_text(f"c.JobsApp.kernels = {{'docker': {{'backend': 'docker', 'image': {IMAGE!r}}}}}\n")
        with server([f"--config={config}", "--JobsApp.metrics_interval=0"]) as srv:
            for _ in range(runs):
                docker["docker run + ipykernel (baseline)"].append(docker_run_reply())
                docker["jupyter-jobs-docker: a docker job kernel"].append(
                    asyncio.run(first_reply(srv, "jupyter-jobs-docker")))
    show(docker, runs, 1.2)


def show(results: dict[str, list[float]], runs: int, target: float) -> None:
    base = statistics.median(next(v for name, v in results.items() if "baseline" in name))
    table(f"Kernel start to its first execute_reply, s ({runs} runs each, interleaved)",
          ["kernel", "min", "median", "max", "vs baseline", f"within {target}x"],
          [[name, min(v), statistics.median(v), max(v), f"{statistics.median(v) / base:.2f}x",
            "" if "baseline" in name else ("yes" if statistics.median(v) <= target * base else "NO")]
           for name, v in results.items()])


if __name__ == "__main__":
    main()
