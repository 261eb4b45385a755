"""`%%job --backend local` with `print(1)` in a warm kernel: cell start to first streamed output,
vs the service's own REST submit-to-first-line in the same run. Target: the magic adds at most
100 ms (median)."""

from __future__ import annotations

import os
import time

from bench_submit import rest
from common import median_ms, ms, parser, percentile, server, table
from support import Kernel


def magic(kernel: Kernel) -> float:
    first: list[float] = []
    start = time.monotonic()

    def on_message(msg: dict) -> None:
        if msg["msg_type"] == "stream" and not first:
            first.append(time.monotonic())

    run = kernel.run("%%job --backend local\nprint(1)\n", on_message=on_message)
    assert run.error is None and run.text() == "1\n", run.text()
    return first[0] - start


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 5 if args.quick else 30
    with server() as srv:
        env = {**os.environ, "JUPYTER_JOBS_URL": srv.url + "/", "JUPYTER_JOBS_TOKEN": srv.token,
               "JUPYTER_JOBS_ROOT": str(srv.root)}
        kernel = Kernel(srv.root, env)
        try:
            assert kernel.run("%load_ext jupyter_jobs").error is None
            for _ in range(3):  # warm
                magic(kernel), rest(srv)
            cells, posts = [], []
            for _ in range(runs):
                cells.append(magic(kernel))
                posts.append(rest(srv))
        finally:
            kernel.stop()
    c, r = median_ms(cells), median_ms(posts)
    table(f"%%job print(1): cell start to first output, warm kernel, {runs} runs each",
          ["path", "median ms", "p90 ms", "added by the magic", "target", "meets target"],
          [["REST submit + follow (baseline)", r, ms(percentile(posts, 90)), "", "", ""],
           ["%%job --backend local", c, ms(percentile(cells, 90)), f"{c - r:.1f} ms", "<= 100 ms",
            "yes" if c - r <= 100 else "NO"]])


if __name__ == "__main__":
    main()
