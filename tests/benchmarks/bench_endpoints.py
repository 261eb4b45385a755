"""Job endpoints: a job's web service through the Jupyter server's proxy vs straight to its port,
measured in the same run, interleaved. The job is an aiohttp app (tests/data/endpoint_app.py) on
the local backend; the client is aiohttp with keep-alive connections, in this process.
Targets: small responses >= 0.5x the direct requests/s; a 100 MB download >= 0.7x the direct
MB/s; a websocket echo round trip <= 1 ms added at the median."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from pathlib import Path

import aiohttp

from common import parser, server, table

APP = Path(__file__).resolve().parent.parent / "data" / "endpoint_app.py"


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
        paths = {"direct": (f"http://127.0.0.1:{app['port']}/", {}), "proxy": (f"{srv.url}/{app['path']}", auth)}
        small = {  # (label, url, headers): the two servers, straight and through the proxy; Jupyter's own
            "app direct": (f"http://127.0.0.1:{app['port']}/small", {}),
            "app proxy": (f"{srv.url}/{app['path']}small", auth),
            "http.server direct": (f"http://127.0.0.1:{files['port']}/small.txt", {}),
            "http.server proxy": (f"{srv.url}/{files['path']}small.txt", auth),
            "jupyter /api/status": (f"{srv.url}/api/status", auth),
        }
        rps: dict[str, list[float]] = {name: [] for name in small}
        mbps: dict[str, list[float]] = {"direct": [], "proxy": []}
        rtt: dict[str, list[float]] = {"direct": [], "proxy": []}
        for _ in range(runs):  # interleaved: every path sees the same machine state
            for name, (url, headers) in small.items():
                rps[name].append(asyncio.run(requests_per_second(url, headers, count, clients)))
            for name, (base, headers) in paths.items():
                mbps[name].append(asyncio.run(megabytes_per_second(base, headers, mb)))
                rtt[name].append(statistics.median(asyncio.run(websocket_rtts(base, headers, echoes))) * 1000)
        for job in (app_job, files_job):  # jobs outlive their server: end them
            srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")

    def ratios(ours: list[float], base: list[float]) -> list[float]:
        return [o / b for o, b in zip(ours, base)]

    table(f"Small responses, requests/s ({runs} interleaved runs of {count} GETs over {clients} connections)",
          ["path", "min", "median", "max", "vs direct (median of per-run ratios)", "target"],
          [[name, *stats(values),
            "{:.2f}x".format(statistics.median(ratios(values, rps[name.replace("proxy", "direct")])))
            if "proxy" in name else "", ">= 0.5x" if name == "http.server proxy" else ""]
           for name, values in rps.items()])
    rows = [
        [f"{mb} MB download, MB/s", *stats(mbps["direct"]), *stats(mbps["proxy"]),
         "{:.2f}x".format(statistics.median(ratios(mbps["proxy"], mbps["direct"]))), ">= 0.7x"],
        ["websocket echo, median ms", *stats(rtt["direct"], "{:.3f}"), *stats(rtt["proxy"], "{:.3f}"),
         "+{:.3f} ms".format(statistics.median(rtt["proxy"]) - statistics.median(rtt["direct"])), "<= +1 ms"],
    ]
    table(f"The aiohttp job through the proxy vs direct ({runs} interleaved runs; {mb} MB, {echoes} echoes per run)",
          ["measure", "direct min", "direct median", "direct max", "proxy min", "proxy median", "proxy max",
           "proxy vs direct (median of per-run ratios)", "target"], rows)


if __name__ == "__main__":
    main()
