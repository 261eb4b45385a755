"""Submit-to-first-log-line over REST vs the same command through bare `subprocess`,
interleaved in each round so both see the same machine; min/median/max over the rounds.

Target: the median REST time <= 2x the bare one, with no fixed allowance.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from common import median_ms, parser, rest_first_line, server, table

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
    rounds, runs = (2, 5) if args.quick else (5, 40)
    bare_m, rest_m, ratios = [], [], []
    with server() as srv:
        for _ in range(3):  # warm both paths
            bare(), rest(srv)
        for _ in range(rounds):
            bare_t, rest_t = [], []
            for _ in range(runs):  # interleaved, so both see the same machine
                bare_t.append(bare())
                rest_t.append(rest(srv))
            bare_m.append(median_ms(bare_t))
            rest_m.append(median_ms(rest_t))
            ratios.append(rest_m[-1] / bare_m[-1])
    spread = lambda xs: [min(xs), statistics.median(xs), max(xs)]  # noqa: E731
    table(
        f"Submit to first log line, python -c 'print(1)': {rounds} rounds of {runs} runs each, "
        "the medians of the rounds",
        ["path", "min ms", "median ms", "max ms", "vs bare (min/median/max)", "target", "meets target"],
        [
            ["bare subprocess (baseline)", *spread(bare_m), "1.0x", "", ""],
            ["REST submit + follow (local backend)", *spread(rest_m),
             "/".join(f"{r:.2f}x" for r in spread(ratios)), "<= 2x",
             "yes" if statistics.median(ratios) <= 2 else "NO"],
        ],
    )


if __name__ == "__main__":
    main()
