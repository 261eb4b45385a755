"""Schedules at scale: 1,000 schedules due in the same second of three minutes in a row (a six-field cron expression
naming that second), each starting a job of `true` on the local backend (4 at once). Counted
from the history afterwards: every schedule made exactly one job (none twice, none missed), and
how late each job was recorded after its due time (target: all within 5 s). The baseline, in
the same run: the same number of jobs POSTed directly, back to back, by one client."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from common import parser, server, table


def create(srv, count: int, second: int) -> list[str]:
    spec = {"command": "true", "workspace": "w"}
    # overlap "allow": a round's jobs may still queue behind the last round's (4 run at once), and
    # the default policy would then skip those times on purpose; this measures firing
    return [srv.request("POST", "/jupyter-jobs/schedules", {"spec": spec, "cron": f"* * * * * {second}",
                                                            "name": f"s{i}", "overlap": "allow"})["id"]
            for i in range(count)]


def scheduled_jobs(srv) -> list[dict]:
    jobs, cursor = [], None
    while True:
        page = srv.request("GET", "/jupyter-jobs/jobs?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        jobs += [j for j in page["jobs"] if j["schedule"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


def main() -> None:
    args = parser(__doc__).parse_args()
    count, rounds = (100, 1) if args.quick else (1000, 3)
    with server(["--LocalBackend.max_running=4"]) as srv:
        (srv.root / "w").mkdir()
        start = time.perf_counter()
        for _ in range(count):
            srv.request("POST", "/jupyter-jobs/jobs", {"command": "true", "workspace": "w"})
        direct = time.perf_counter() - start
        due = int(time.time() + 10 + count * 0.02)  # time to create them all before the second comes
        ids = create(srv, count, due % 60)
        assert time.time() < due, "creating the schedules took longer than the lead time"
        worst, medians, made, twice, missed = [], [], [], 0, 0
        for n in range(rounds):  # the same second of the next minutes
            when = due + 60 * n
            time.sleep(max(0.0, when - time.time()) + 8)
            jobs = [j for j in scheduled_jobs(srv)
                    if abs(datetime.fromisoformat(j["created_at"]).timestamp() - when) < 30]
            per_schedule = {s: 0 for s in ids}
            for job in jobs:
                per_schedule[job["schedule"]] += 1
            late = [datetime.fromisoformat(j["created_at"]).timestamp() - when for j in jobs]
            twice += sum(1 for v in per_schedule.values() if v > 1)
            missed += sum(1 for v in per_schedule.values() if v == 0)
            made.append(len(jobs))
            worst.append(max(late))
            medians.append(statistics.median(late))
        table(f"{count:,} schedules due in the same second, {rounds} round(s) (a minute apart)",
              ["measure", "min", "median", "max", "target", "met"],
              [["jobs created per round", str(min(made)), "", str(max(made)), f"{count}",
                "yes" if set(made) == {count} else "NO"],
               ["schedules that fired twice / never, all rounds", "", f"{twice} / {missed}", "", "0 / 0",
                "yes" if twice == missed == 0 else "NO"],
               ["median lateness of a round's jobs, s", f"{min(medians):.2f}", f"{statistics.median(medians):.2f}",
                f"{max(medians):.2f}", "", ""],
               ["the latest job of a round after its due time, s", f"{min(worst):.2f}",
                f"{statistics.median(worst):.2f}", f"{max(worst):.2f}", "<= 5 s", "yes" if max(worst) <= 5 else "NO"],
               [f"baseline: {count:,} jobs POSTed back to back by one client, s", "", f"{direct:.2f}", "", "", ""]])
        for s in ids:
            srv.request("DELETE", f"/jupyter-jobs/schedules/{s}")


if __name__ == "__main__":
    main()
