"""From a preempting job's submit to its first log line, on a server whose only GPU is held by
a preemptible job (the inventory is configured: no GPU here; the stop, the requeue and the
start are real). Two victims: one that checkpoints and exits on SIGTERM at once, and one that
ignores SIGTERM (it is killed after the grace). Baseline in the same run: the same job's
submit to first line with the GPU free.
Target: at most the victim's grace + 1 s (the server's kill grace is 2 s here)."""

from __future__ import annotations

import statistics
import tempfile
import time

from common import parser, rest_first_line, server, table

GRACE = 2.0  # the kill grace the benchmarks' servers run with (support.ServerProcess)
POLITE = ["python3", "-c", "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
          "print('victim', flush=True)\ntime.sleep(600)"]
STUBBORN = ["python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('victim', flush=True)\ntime.sleep(600)"]
URGENT = {"command": ["python3", "-c", "print(1)"], "resources": {"gpus": 1}, "priority": 5}


def victim_running(srv, command: list[str]) -> str:
    job = srv.request("POST", "/jupyter-jobs/jobs", {"command": command, "resources": {"gpus": 1},
                                                      "preemptible": True})["id"]
    deadline = time.monotonic() + 30
    while "victim" not in "".join(c.get("text", "") for c in srv.logs(job)):
        assert time.monotonic() < deadline, "the victim never started"
        time.sleep(0.02)
    return job


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 2 if args.quick else 5
    results: dict[str, list[float]] = {"GPU free (baseline)": [], "victim exits on SIGTERM": [],
                                       f"victim ignores SIGTERM (killed after {GRACE:g} s)": []}
    with tempfile.TemporaryDirectory() as pool, server([
            "--JobsApp.gpus=1", f"--JobsApp.gpu_pool_dir={pool}/gpus", "--JobsApp.metrics_interval=0"]) as srv:
        for _ in range(runs):
            results["GPU free (baseline)"].append(rest_first_line(srv, URGENT))
            for name, command in ((("victim exits on SIGTERM", POLITE),
                                   (f"victim ignores SIGTERM (killed after {GRACE:g} s)", STUBBORN))):
                victim = victim_running(srv, command)
                results[name].append(rest_first_line(srv, URGENT))
                srv.request("POST", f"/jupyter-jobs/jobs/{victim}/cancel")
                srv.wait(victim, timeout=30)
    table(f"A preempting job: submit to its first log line, s ({runs} runs; kill grace {GRACE:g} s)",
          ["the GPU", "min", "median", "max", f"median <= grace + 1 s ({GRACE + 1:g} s)"],
          [[name, min(v), statistics.median(v), max(v), "" if "baseline" in name else
            ("yes" if statistics.median(v) <= GRACE + 1 else "NO")] for name, v in results.items()])


if __name__ == "__main__":
    main()
