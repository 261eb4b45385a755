"""A notebook as a job. A 50-cell notebook (each cell a little arithmetic and a print) run as
a job on the local backend, from POST to its end, against `jupyter nbconvert --to notebook
--execute` of the same notebook as a whole process (the usual way to run a notebook headless),
measured in the same run, interleaved (target: the job <= 0.7x nbconvert). The job's own
interpreter skips rfc3987_syntax's import (see notebook_runner.py); nbconvert pays it, as it
does wherever it runs. bench_peers.py holds the same notebook against jupyter-scheduler."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from common import parser, server, table

HERE = Path(__file__).resolve().parent


def make_notebook(path: Path, cells: int) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    first = nbformat.v4.new_code_cell("n = 10")
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first] + [nbformat.v4.new_code_cell(f"x{i} = sum(range(n * {i}))\nprint({i}, x{i})")
                          for i in range(1, cells)]
    nbformat.write(nb, path)


def as_job(srv, cells: int) -> float:
    start = time.perf_counter()
    job = srv.request("POST", "/jupyter-jobs/jobs", {"notebook": "bench.ipynb", "workspace": "w",
                                                     "parameters": {"n": 20}})
    while (state := srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}"))["status"] not in (
            "succeeded", "failed", "cancelled"):
        time.sleep(0.02)
    assert state["status"] == "succeeded", state["message"]
    return time.perf_counter() - start


def nbconvert(folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output",
                    str(folder / "out.ipynb"), str(folder / "bench.ipynb")], check=True, capture_output=True)
    return time.perf_counter() - start


def stats(values: list[float]) -> list[str]:
    return [f"{min(values):.2f}", f"{statistics.median(values):.2f}", f"{max(values):.2f}"]


def main() -> None:
    args = parser(__doc__).parse_args()
    cells, runs = (10, 2) if args.quick else (50, 7)
    with server() as srv, tempfile.TemporaryDirectory() as tmp:
        (srv.root / "w").mkdir()
        make_notebook(srv.root / "w" / "bench.ipynb", cells)
        make_notebook(Path(tmp) / "bench.ipynb", cells)
        as_job(srv, cells), nbconvert(Path(tmp))  # warm both
        jobs, converts = [], []
        for _ in range(runs):
            converts.append(nbconvert(Path(tmp)))
            jobs.append(as_job(srv, cells))
        ratio = statistics.median(jobs) / statistics.median(converts)
        table(f"A {cells}-cell notebook, start to end ({runs} runs each, interleaved)",
              ["path", "min s", "median s", "max s", "ratio (medians)", "target", "met"],
              [["jupyter nbconvert --to notebook --execute (baseline)", *stats(converts), "1.00x", "", ""],
               ["as a job (local backend): POST until succeeded", *stats(jobs), f"{ratio:.2f}x", "<= 0.7x",
                "yes" if ratio <= 0.7 else "NO"]])


if __name__ == "__main__":
    main()
