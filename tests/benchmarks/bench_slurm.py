"""The slurm backend: submit-to-first-log-line vs raw `sbatch --wrap` plus waiting for its output
file, in the same run. Target: <= 1.3x (median). Needs `bash scripts/slurm-cluster`."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from common import parser, ratio_table, require_part, rest_first_line
from support import SLURM_CONF, ServerProcess, slurm_problem

ENV = {**os.environ, "SLURM_CONF": SLURM_CONF}


def raw_sbatch(folder: Path) -> float:
    out = folder / f"raw-{time.monotonic_ns()}.out"
    start = time.perf_counter()
    subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo 1"], env=ENV, check=True,
                   capture_output=True)
    while not (out.exists() and out.read_bytes().endswith(b"1\n")):
        time.sleep(0.005)
    return time.perf_counter() - start


def rest(srv: ServerProcess) -> float:
    return rest_first_line(srv, {"backend": "slurm", "command": "echo 1"})


def main() -> None:
    args = parser(__doc__).parse_args()
    require_part(slurm_problem(), "bench_slurm")
    runs = 3 if args.quick else 15
    with tempfile.TemporaryDirectory(prefix="jobs-bench-slurm-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        srv = ServerProcess(root, Path(tmp) / "data", extra=[f"--SlurmBackend.slurm_conf={SLURM_CONF}",
                                                             "--SlurmBackend.poll_interval=0.2"]).start()
        try:
            raw_sbatch(Path(tmp)), rest(srv)
            base, ours = [], []
            for _ in range(runs):
                base.append(raw_sbatch(Path(tmp)))
                ours.append(rest(srv))
        finally:
            srv.stop()
    ratio_table(f"Slurm: submit to first log line, `echo 1`, {runs} runs each",
                ("sbatch --wrap + waiting for the output file (baseline)", base),
                ("REST submit + follow (slurm backend)", ours), 1.3)


if __name__ == "__main__":
    main()
