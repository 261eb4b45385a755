"""Job endpoints: a job's web service through the Jupyter server's proxy vs straight to its port,
measured in the same run, interleaved. The job is an aiohttp app (tests/data/endpoint_app.py) on
the local backend; the client is aiohttp with keep-alive connections, in this process.
Targets: small responses >= 0.5x the direct requests/s; a 100 MB download >= 0.7x the direct
MB/s; a websocket echo round trip <= 1 ms added at the median. Beside them, the floor of any
proxy here (relay_floor.py: bytes spliced between the sockets, no HTTP at all) and of any handler
in Jupyter's HTTP server (tornado_floor.py: bare tornado answering "ok"): a target a floor
misses too is beyond this machine, or beyond a proxy inside Jupyter's server."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from common import parser, server, table

APP = Path(__file__).resolve().parent.parent / "data" / "endpoint_app.py"
HERE = Path(__file__).resolve().parent


@contextmanager
def floor(script: str, *args: str) -> Iterator[str]:
    """One of the floors (relay_floor.py in front of a port, tornado_floor.py): its base URL."""
    proc = subprocess.Popen([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{json.loads(proc.stdout.readline())['listening']}/"
    finally:
        proc.kill()
        proc.wait()


async def requests_per_second(url: str, headers: dict, count: int, clients: int) -> float:
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def one_client(n: int) -> None:
            for _i in range(n):
                async with session.get(url) as resp:
                    assert resp.status == 200, resp.status
                    await resp.read()

        await one_client(clients)  # connections open before the clock starts
        start = time.perf_counter()
        await asyncio.gather(*(one_client(count // clients) for _ in range(clients)))
        return (count // clients * clients) / (time.perf_counter() - start)


async def megabytes_per_second(base: str, headers: dict, mb: int) -> float:
    async with aiohttp.ClientSession(headers=headers, auto_decompress=False) as session:
        start = time.perf_counter()
        got = 0
        async with session.get(f"{base}big?mb={mb}") as resp:
            assert resp.status == 200, resp.status
            async for chunk in resp.content.iter_chunked(1 << 20):
                got += len(chunk)
        assert got == mb << 20, got
        return mb / (time.perf_counter() - start)


async def websocket_rtts(base: str, headers: dict, count: int) -> list[float]:
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect("ws" + base[4:] + "ws") as ws:
        rtts = []
        for i in range(count):
            start = time.perf_counter()
            await ws.send_str(f"m{i}")
            msg = await ws.receive()
            rtts.append(time.perf_counter() - start)
            assert msg.data == f"m{i}", msg
        return rtts


def stats(values: list[float], fmt: str = "{:.0f}") -> list[str]:
    return [fmt.format(min(values)), fmt.format(statistics.median(values)), fmt.format(max(values))]


def serve(srv, command: str) -> dict:
    """A job serving an endpoint `api`, once it is ready."""
    job = srv.request("POST", "/jupyter-jobs/jobs", {
        "command": command, "workspace": "w", "expose": [{"port": 8000, "name": "api"}]})
    deadline = time.monotonic() + 60
    while (job := srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}"))["endpoints"][0]["state"] != "ready":
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    return job


def main() -> None:
    args = parser(__doc__).parse_args()
    runs, count, mb, echoes = (2, 400, 10, 200) if args.quick else (5, 4000, 100, 2000)
    clients = 8
    auth = {"Authorization": "token "}
    with server() as srv:
        auth["Authorization"] += srv.token
        (srv.root / "w").mkdir()
        shutil.copy(APP, srv.root / "w" / "app.py")
        (srv.root / "w" / "small.txt").write_text("ok\n" * 10)
        app_job, files_job = serve(srv, "exec python3 app.py"), serve(srv, "exec python3 -m http.server $PORT_API "
                                                                      "--bind 127.0.0.1")
        app, files = app_job["endpoints"][0], files_job["endpoints"][0]
        with floor("relay_floor.py", str(app["port"])) as relay, floor("tornado_floor.py") as bare_tornado:
            measured = measure(srv.url, auth, app, files, (relay, bare_tornado), (runs, count, mb, echoes, clients))
        for job in (app_job, files_job):  # jobs outlive their server: end them
            srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")
    report(*measured, (runs, count, mb, echoes, clients))


def measure(url: str, auth: dict, app: dict, files: dict, floors: tuple[str, str],
            sizes: tuple) -> tuple[dict, dict, dict]:
    """Every path, interleaved run by run: requests/s, MB/s, websocket round trips."""
    runs, count, mb, echoes, clients = sizes
    relay, bare_tornado = floors
    paths = {"direct": (f"http://127.0.0.1:{app['port']}/", {}), "proxy": (f"{url}/{app['path']}", auth),
             "floor relay": (relay, {})}
    small = {  # (label, url, headers): the two servers, straight and through the proxy; Jupyter's own
        "app direct": (f"http://127.0.0.1:{app['port']}/small", {}),
        "app proxy": (f"{url}/{app['path']}small", auth),
        "app floor relay": (f"{relay}small", {}),
        "http.server direct": (f"http://127.0.0.1:{files['port']}/small.txt", {}),
        "http.server proxy": (f"{url}/{files['path']}small.txt", auth),
        "jupyter /api/status": (f"{url}/api/status", auth),
        "tornado, bare (the floor of any handler in Jupyter's server)": (f"{bare_tornado}small", {}),
    }
    rps: dict[str, list[float]] = {name: [] for name in small}
    mbps: dict[str, list[float]] = {name: [] for name in paths}
    rtt: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):  # interleaved: every path sees the same machine state
        for name, (target, headers) in small.items():
            rps[name].append(asyncio.run(requests_per_second(target, headers, count, clients)))
        for name, (base, headers) in paths.items():
            mbps[name].append(asyncio.run(megabytes_per_second(base, headers, mb)))
            rtt[name].append(statistics.median(asyncio.run(websocket_rtts(base, headers, echoes))) * 1000)
    return rps, mbps, rtt


def _vs(ours: list[float], base: list[float]) -> str:
    """The median of the per-run ratios (each run's pair measured side by side)."""
    return "{:.2f}x".format(statistics.median([o / b for o, b in zip(ours, base)]))


def _small_vs(name: str, values: list[float], rps: dict) -> str:
    """A path through a proxy or relay against its own server direct; a floor against the app's."""
    server = name.split()[0]
    if name.endswith("direct"):
        return ""
    if server in ("app", "http.server"):
        return _vs(values, rps[f"{server} direct"])
    return _vs(values, rps["app direct"]) + " of app direct"


def report(rps: dict, mbps: dict, rtt: dict, sizes: tuple) -> None:
    runs, count, mb, echoes, clients = sizes
    table(f"Small responses, requests/s ({runs} interleaved runs of {count} GETs over {clients} connections)",
          ["path", "min", "median", "max", "vs direct (median of per-run ratios)", "target"],
          [[name, *stats(values), _small_vs(name, values, rps), ">= 0.5x" if name == "app proxy" else ""]
           for name, values in rps.items()])
    rows = [[f"{mb} MB download, MB/s", name, *stats(mbps[name]), _vs(mbps[name], mbps["direct"]) if name != "direct"
             else "", ">= 0.7x" if name == "proxy" else ""] for name in mbps]
    rows += [["websocket echo, median ms", name, *stats(rtt[name], "{:.3f}"),
              "+{:.3f} ms".format(statistics.median(rtt[name]) - statistics.median(rtt["direct"]))
              if name != "direct" else "", "<= +1 ms" if name == "proxy" else ""] for name in rtt]
    table(f"The aiohttp job: direct, through the proxy, through the floor relay ({runs} interleaved runs; {mb} MB, "
          f"{echoes} echoes per run)", ["measure", "path", "min", "median", "max", "vs direct", "target"], rows)


if __name__ == "__main__":
    main()
