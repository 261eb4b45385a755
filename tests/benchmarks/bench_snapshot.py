"""Workspace snapshot of a 1 GiB / 10,000-file folder vs `tar -cf` on the same disk.

Targets: first snapshot >= 0.7 x tar's throughput; unchanged re-snapshot <= 5 % of the first.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from common import parser, settle_disk, table, warm_memory



def make_tree(root: Path, files: int, total: int) -> None:
    size = total // files
    block = os.urandom(size + files)
    for i in range(files):
        path = root / f"d{i % 100:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        # every file differs (a shifted window of random bytes): no dedup advantage
        path.write_bytes(i.to_bytes(4, "little") + block[i : i + size - 4])


def settle(src: Path) -> None:
    """Read the folder (every step starts with it in the page cache, as a workspace just
    worked on is), let the disk settle and the memory be the guest's (see `settle_disk`,
    `warm_memory`)."""
    for path in src.rglob("*"):
        if path.is_file():
            path.read_bytes()
    settle_disk()
    warm_memory()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def snapshot_twice(store_dir: Path, src: Path) -> tuple[float, float, float]:
    """A first and an unchanged snapshot, timed inside a fresh process (as a server's would be:
    the same store code, no interpreter start counted; this process has read and written GiBs);
    also the CPU seconds (all threads, user + system) the first one took."""
    code = ("import sys, time; from pathlib import Path; from jupyter_jobs.storage.snapshots import SnapshotStore\n"
            "store = SnapshotStore(Path(sys.argv[1]), max_bytes=2 << 30)\n"
            "times = []\n"
            "for _ in range(2):\n"
            "    cpu, start = time.process_time(), time.perf_counter(); store.snapshot(Path(sys.argv[2]))\n"
            "    times += [time.perf_counter() - start, time.process_time() - cpu]\n"
            "print(*times)\n")
    out = subprocess.run([sys.executable, "-c", code, str(store_dir), str(src)], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[2]), float(out[1])


def tar_cpu(run: Callable[[], None]) -> float:
    """CPU seconds (user + system) of the child processes `run` waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rest_submit(tmp: Path, src: Path) -> float:
    """POST /jobs with the folder as workspace on a fresh server (nothing stored yet), until 201."""
    from support import ServerProcess

    data = tmp / "rest-data"
    shutil.rmtree(data, ignore_errors=True)
    srv = ServerProcess(src.parent, data, extra=["--JobsApp.max_snapshot_size=2147483648"]).start()
    try:
        srv.request("GET", "/jupyter-jobs/jobs")  # warm
        settle(src)
        start = time.perf_counter()
        job = srv.request("POST", "/jupyter-jobs/jobs", {"workspace": src.name, "command": ["true"]})
        elapsed = time.perf_counter() - start
        srv.wait(job["id"], timeout=300)
        return elapsed
    finally:
        srv.stop()


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    ordered = sorted(values)
    return " / ".join(fmt.format(v) for v in (ordered[0], statistics.median(ordered), ordered[-1]))


def main() -> None:
    args = parser(__doc__).parse_args()
    files, total = (500, 20 << 20) if args.quick else (10_000, 1 << 30)
    mib = total / (1 << 20)
    with tempfile.TemporaryDirectory(prefix="jobs-bench-snap-", dir=os.environ.get("BENCH_DIR")) as tmp:
        src = Path(tmp) / "root" / "src"  # under the REST server's root too
        make_tree(src, files, total)
        subprocess.run(["sync"], check=True)
        tar_file = Path(tmp) / "snapshot.tar"
        tars, firsts, agains, rests, tar_cpus, first_cpus, finds = [], [], [], [], [], [], []
        for _ in range(1 if args.quick else 5):  # interleaved: each round's baseline sees the same machine
            tar_file.unlink(missing_ok=True)
            settle(src)  # no write-back or discard of the last step in this one
            tar_cpus.append(tar_cpu(lambda: tars.append(timed(lambda: subprocess.run(
                ["tar", "-cf", str(tar_file), "-C", str(src), "."], check=True)))))
            store_dir = Path(tmp) / "store"
            shutil.rmtree(store_dir, ignore_errors=True)
            settle(src)
            first, again, cpu = snapshot_twice(store_dir, src)
            finds.append(timed(lambda: subprocess.run(  # the floor of noticing a change by stat: C, no Python
                ["find", str(src), "-printf", "%s %T@ %i\n"], stdout=subprocess.DEVNULL, check=True)))
            firsts.append(first)
            agains.append(again)
            first_cpus.append(cpu)
            shutil.rmtree(store_dir, ignore_errors=True)
            rests.append(rest_submit(Path(tmp), src))
    first_ratio = [t / f for t, f in zip(tars, firsts)]
    rest_ratio = [t / r for t, r in zip(tars, rests)]
    again_pct = [100 * a / f for a, f in zip(agains, firsts)]
    find_pct = [100 * a / f for a, f in zip(finds, firsts)]
    table(
        f"Snapshot of {mib:.0f} MiB in {files} files ({len(tars)} rounds; min / median / max)",
        ["operation", "seconds", "vs baseline (per round)", "target", "meets target"],
        [
            ["tar -cf (baseline)", spread(tars), "1.0x", "", ""],
            ["first snapshot", spread(firsts), spread(first_ratio, "{:.2f}x tar throughput"), ">= 0.7x (median)",
             "yes" if statistics.median(first_ratio) >= 0.7 else "NO"],
            ["unchanged re-snapshot", spread(agains), spread(again_pct, "{:.1f} % of first"), "<= 5 % (max)",
             "yes" if max(again_pct) <= 5 else "NO"],
            ["floor: `find -printf`, a stat of every file (C; its process start included)", spread(finds),
             spread(find_pct, "{:.1f} % of first"), "", ""],
            ["REST submit, fresh server (POST /jobs until 201)", spread(rests),
             spread(rest_ratio, "{:.2f}x tar throughput"), ">= 0.7x (median)",
             "yes" if statistics.median(rest_ratio) >= 0.7 else "NO"],
        ],
    )
    table("Where the time went, per round (CPU seconds, all threads, user + system; wall seconds)",
          ["round", "tar -cf CPU / wall", "first snapshot CPU / wall"],
          [[i + 1, f"{tc:.2f} / {t:.2f}", f"{fc:.2f} / {f:.2f}"]
           for i, (tc, t, fc, f) in enumerate(zip(tar_cpus, tars, first_cpus, firsts))])


if __name__ == "__main__":
    main()
