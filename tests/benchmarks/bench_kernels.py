"""A job kernel's start, through a running server's REST API and kernel websocket: from
POST /api/kernels to the first execute_reply of `1+1`, for the local GPU job kernel (a job that
waits in the queue and GPU pool, then runs ipykernel) and, as the baseline in the same run, the
plain ipykernel (`python3`) on the same server.
Target: the job kernel within 1.3x of the plain one."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid

from common import parser, server, table


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
    base = statistics.median(results["python3: plain ipykernel (baseline)"])
    table(f"Kernel start to its first execute_reply, s ({runs} runs each, interleaved)",
          ["kernel", "min", "median", "max", "vs baseline", "within 1.3x"],
          [[name, min(v), statistics.median(v), max(v), f"{statistics.median(v) / base:.2f}x",
            "" if "baseline" in name else ("yes" if statistics.median(v) <= 1.3 * base else "NO")]
           for name, v in results.items()])


if __name__ == "__main__":
    main()
