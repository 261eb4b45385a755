"""`jupyter jobs list` against a running server, end to end: a fresh process that finds the
server (its runtime file), asks for `GET /jupyter-jobs/jobs?limit=20` and prints the table.

Target: median well under a second (< 500 ms).
Baselines, in the same run and the same rounds: `curl` of the same endpoint, and a fresh
`python` fetching it with urllib (the floor for any Python command). For reference, what
finding the server alone cost before (jupyter_server's `list_running_servers`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fill_history, ms, parser, table
from support import ServerProcess

BIN = Path(sys.executable).parent
TARGET_MS = 500


def timed(command: list[str], cwd: Path, env: dict[str, str], expect: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and expect in done.stdout, (command, done.stdout[-500:], done.stderr[-2000:])
    return elapsed


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 3 if args.quick else 20
    with tempfile.TemporaryDirectory(prefix="jobs-bench-cli-") as tmp:
        root, data, runtime = Path(tmp) / "root", Path(tmp) / "data", Path(tmp) / "runtime"
        root.mkdir()
        data.mkdir()
        asyncio.run(fill_history(data / "jobs.db", 50))
        srv = ServerProcess(root, data, env={"JUPYTER_RUNTIME_DIR": str(runtime)}).start()
        try:
            url = f"{srv.url}/jupyter-jobs/jobs?limit=20"
            env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_JOBS_")}
            env.update({"JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_RUNTIME_DIR": str(runtime),
                        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
            auth = {"Authorization": f"token {srv.token}"}
            fetch = f"import urllib.request as u; print(u.urlopen(u.Request({url!r}, headers={auth!r})).read())"
            found_before = "from jupyter_server.serverapp import list_running_servers as l; print(list(l()))"
            commands = {
                "python -c pass (interpreter start)": ([sys.executable, "-c", "pass"], ""),
                "python + urllib, same endpoint (baseline)": ([sys.executable, "-c", fetch], '"jobs"'),
                "jupyter-jobs list": ([str(BIN / "jupyter-jobs"), "list"], "run-49"),
                "jupyter jobs list": ([str(BIN / "jupyter"), "jobs", "list"], "run-49"),
                "jupyter-jobs list --url --token": ([str(BIN / "jupyter-jobs"), "list", "--url", srv.url,
                                                     "--token", srv.token], "run-49"),
                "before: finding the server only (list_running_servers)": ([sys.executable, "-c", found_before],
                                                                           str(srv.port)),
            }
            if shutil.which("curl"):
                curl = ["curl", "-sf", "-H", f"Authorization: token {srv.token}", url]
                commands = {"curl, same endpoint (baseline)": (curl, '"jobs"'), **commands}
            for command, expect in commands.values():  # warm the page cache and the server
                timed(command, root, env, expect)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(runs):  # interleaved rounds: each sees the same machine
                for name, (command, expect) in commands.items():
                    times[name].append(timed(command, root, env, expect))
        finally:
            srv.stop()
    baseline = statistics.median(times.get("curl, same endpoint (baseline)")
                                 or times["python + urllib, same endpoint (baseline)"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        cli = name.startswith(("jupyter-jobs", "jupyter jobs"))
        rows.append([name, ms(min(values)), ms(median), ms(max(values)), f"{median / baseline:.1f}x",
                     ("yes" if ms(median) < TARGET_MS else "NO") if cli else ""])
    table(f"A command round trip against a running server ({runs} runs each, interleaved; GET /jobs?limit=20)",
          ["command", "min ms", "median ms", "max ms", "median vs curl", f"median < {TARGET_MS} ms"], rows)


if __name__ == "__main__":
    main()
