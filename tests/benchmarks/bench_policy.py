"""One scheduling decision on a busy shared host: 1,000 jobs of 10 users wait for GPUs (each
user's server has a ticket per job in the pool, and a ledger of GPU time), 8 devices are held.
Timed: the rule alone (domain/policy: order 1,000 waiting jobs, quotas, the reason in words),
and a whole allocation through the pool (read every ticket, record and ledger, decide, write
the job's ticket). Baseline in the same run: the same allocation with no job waiting.
Target: the decision under 10 ms."""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import parser, table


def plant(folder: Path, users: int, waiting: int, now: float) -> None:
    """What 10 users' servers leave in the pool: a folder each, tickets of their waiting jobs
    (live: naming this process as their server) and a ledger of their GPU time."""
    from jupyter_jobs.backends.base import start_time

    me = {"pid": os.getpid(), "start": start_time(os.getpid())}
    rng = random.Random(1)
    for u in range(users):
        own = folder / f"service-user{u}"
        own.mkdir(mode=0o755)
        for j in range(waiting // users):
            (own / f"wait-{u:04x}{j:012x}.json").write_text(json.dumps({
                "count": rng.choice([1, 1, 2, 4]), "since": now - rng.uniform(0, 3600), "server": me,
                "job": f"u{u}j{j}", "priority": rng.choice([0, 0, 0, 5]), "project": f"p{u % 3}"}))
        hours = {str(int(now // 3600 - h) * 3600): rng.uniform(0, 7200) for h in range(24)}
        (own / "usage.json").write_text(json.dumps({"hours": hours, "carry": [rng.uniform(0, 50), now]}))


def decisions(pool, count: int) -> list[float]:
    """Seconds per allocate() of a job that must wait (its ticket written, then withdrawn)."""
    out = []
    for i in range(count):
        start = time.perf_counter()
        got, _, _ = pool.allocate(1, f"bench{i}", time.time(), 0, None)
        out.append(time.perf_counter() - start)
        pool.release(f"bench{i}")
        assert got is None or len(got) == 1
    return out


def main() -> None:
    from jupyter_jobs.domain.policy import Policy, Usage, Waiting, hold, order, why_behind
    from jupyter_jobs.jobs.gpupool import HostGPUPool

    args = parser(__doc__).parse_args()
    runs, count, waiting = (2, 5, 100) if args.quick else (5, 30, 1000)
    users, now = 10, time.time()
    rng = random.Random(2)
    policy = Policy.from_json({"default": {"gpus": 4, "running": 8}, "users": {"user0": {"max_priority": 5}}})
    jobs = [Waiting(f"k{i}", f"user{i % users}", rng.choice([1, 2]), now - rng.uniform(0, 3600),
                    policy.priority(f"user{i % users}", rng.choice([0, 5]))) for i in range(waiting)]
    usage = {f"user{u}": Usage(gpus=u % 4, running=u % 4, day=rng.uniform(0, 40), decayed=rng.uniform(0, 60))
             for u in range(users)}

    def rule() -> float:
        start = time.perf_counter()
        ranked = order(jobs, usage)
        for j in ranked:
            hold(j, policy, usage, {})
        why_behind(ranked[-1], ranked[:-1], usage)
        return time.perf_counter() - start

    results: dict[str, list[float]] = {"allocate, none waiting (baseline)": [],
                                       f"the rule alone: order {waiting} jobs, quotas, reason": [],
                                       f"allocate through the pool, {waiting} waiting": []}
    with tempfile.TemporaryDirectory() as tmp:
        empty, busy = Path(tmp) / "empty", Path(tmp) / "busy"
        for folder in (empty, busy):
            folder.mkdir(mode=0o1777)
            holder = HostGPUPool(folder, list(range(8)), 1, service_id="holder")
            for d in range(8):  # every device held: the bench's jobs must wait
                assert holder.allocate(1, f"held{d}", now, 0, None)[0] == [d]
        plant(busy, users, waiting, now)
        alone = HostGPUPool(empty, list(range(8)), 1, service_id="bench")
        crowded = HostGPUPool(busy, list(range(8)), 1, service_id="bench")
        for _ in range(runs):
            results["allocate, none waiting (baseline)"].append(statistics.median(decisions(alone, count)))
            results[f"the rule alone: order {waiting} jobs, quotas, reason"].append(
                statistics.median([rule() for _ in range(count)]))
            results[f"allocate through the pool, {waiting} waiting"].append(
                statistics.median(decisions(crowded, count)))
    table(f"One scheduling decision, ms (median of {count} per run; min / median / max over {runs} runs; "
          f"{users} users, 8 devices all held)",
          ["what", "min", "median", "max"],
          [[name, min(v) * 1e3, statistics.median(v) * 1e3, max(v) * 1e3] for name, v in results.items()])


if __name__ == "__main__":
    main()
