"""Submit-to-first-log-line over REST vs the same command through bare `subprocess`.

Target: median REST <= 2 x bare + 30 ms.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import median_ms, ms, parser, percentile, rest_first_line, server, table

COMMAND = [sys.executable, "-c", "print(1)"]


def bare() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(COMMAND, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait()
    assert line == b"1\n"
    return elapsed


def rest(srv) -> float:
    return rest_first_line(srv, {"command": ["python", "-c", "print(1)"]})


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 5 if args.quick else 40
    with server() as srv:
        for _ in range(3):  # warm both paths
            bare(), rest(srv)
        bare_t, rest_t = [], []
        for _ in range(runs):  # interleaved, so both see the same machine
            bare_t.append(bare())
            rest_t.append(rest(srv))
    b, r = median_ms(bare_t), median_ms(rest_t)
    target = 2 * b + 30
    table(
        f"Submit to first log line, python -c 'print(1)', {runs} runs each",
        ["path", "median ms", "p90 ms", "target ms", "meets target"],
        [
            ["bare subprocess (baseline)", b, ms(percentile(bare_t, 90)), "", ""],
            ["REST submit + follow (local backend)", r, ms(percentile(rest_t, 90)), target,
             "yes" if r <= target else "NO"],
        ],
    )


if __name__ == "__main__":
    main()
