"""Run benchmarks of two checkouts of the project, interleaved round by round, so both see the
same machine: `python ab.py BEFORE AFTER bench_submit.py bench_queue.py --rounds 3 [-- --quick]`.

Each tree's own benchmark script runs with that tree first on PYTHONPATH (so its servers import
its `jupyter_jobs`, with this interpreter's dependencies); each table is printed labelled with
the round and the tree. A refactor's "no benchmark got slower" is read off these tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("scripts", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:])
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    for n in range(1, args.rounds + 1):
        for script in args.scripts:
            for label, tree in (("before", args.before), ("after", args.after)):
                tree = tree.resolve()
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run([sys.executable, script, *extra], cwd=tree / "tests" / "benchmarks", env=env,
                                     capture_output=True, text=True)
                print(f"\n# round {n}, {label} ({tree.name}), {script}: exit {out.returncode}")
                print(out.stdout if out.returncode == 0 else out.stderr[-3000:])
                sys.stdout.flush()


if __name__ == "__main__":
    main()
