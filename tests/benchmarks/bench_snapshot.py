"""Workspace snapshot of a 1 GiB / 10,000-file folder vs `tar -cf` on the same disk.

Targets: first snapshot >= 0.7 x tar's throughput; unchanged re-snapshot <= 5 % of the first.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import parser, table

from jupyter_jobs.snapshots import SnapshotStore


def make_tree(root: Path, files: int, total: int) -> None:
    size = total // files
    block = os.urandom(size + files)
    for i in range(files):
        path = root / f"d{i % 100:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        # every file differs (a shifted window of random bytes): no dedup advantage
        path.write_bytes(i.to_bytes(4, "little") + block[i : i + size - 4])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    args = parser(__doc__).parse_args()
    files, total = (500, 20 << 20) if args.quick else (10_000, 1 << 30)
    with tempfile.TemporaryDirectory(prefix="jobs-bench-snap-", dir=os.environ.get("BENCH_DIR")) as tmp:
        src = Path(tmp) / "src"
        make_tree(src, files, total)
        subprocess.run(["sync"], check=True)
        tar_file = Path(tmp) / "snapshot.tar"
        rounds = []
        for _ in range(1 if args.quick else 3):
            tar_file.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)  # no write-back of the last round in this one
            tar = timed(lambda: subprocess.run(["tar", "-cf", str(tar_file), "-C", str(src), "."], check=True))
            store_dir = Path(tmp) / "store"
            shutil.rmtree(store_dir, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            store = SnapshotStore(store_dir, max_bytes=2 << 30)
            first = timed(lambda s=store: s.snapshot(src))
            again = timed(lambda s=store: s.snapshot(src))
            store.close()
            rounds.append((tar, first, again))
        tar, first, again = (statistics.median(r[i] for r in rounds) for i in range(3))
    mib = total / (1 << 20)
    ratio = tar / first
    table(
        f"Snapshot of {mib:.0f} MiB in {files} files (median of {len(rounds)} rounds)",
        ["operation", "seconds", "MiB/s", "vs baseline", "target", "meets target"],
        [
            ["tar -cf (baseline)", tar, mib / tar, "1.0x", "", ""],
            ["first snapshot", first, mib / first, f"{ratio:.2f}x tar throughput", ">= 0.7x",
             "yes" if ratio >= 0.7 else "NO"],
            ["unchanged re-snapshot", again, mib / again, f"{100 * again / first:.1f} % of first", "<= 5 %",
             "yes" if again <= 0.05 * first else "NO"],
        ],
    )


if __name__ == "__main__":
    main()
