"""How the host's GPU pool is shared (the rule itself is domain/policy.py): the admin's policy
file, each user's and project's use of the GPUs (live records and each service's ledger of
ended GPU time), and which waiting jobs of the host go before this one."""

from __future__ import annotations

import logging
import math
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..domain.policy import DAY, WEEK, Policy, PolicyError, Usage, Waiting, hold, order, why_behind
from .poolfiles import DIR, Fd, load, number

log = logging.getLogger(__name__)

POLICY = "policy.json"
#: the largest policy file read (bytes)
MAX_POLICY = 256 * 1024
#: the most projects a ledger is read for
MAX_PROJECTS = 50
#: seconds an ahead ticket may fit the free devices without taking them before it is ignored
TICKET_PATIENCE = 3.0


def user_name(uid: int, names: dict[int, str] = {}) -> str:  # noqa: B006 (a cache on purpose)
    if uid not in names:
        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            names[uid] = f"uid {uid}"
    return names[uid]


def ledger_usage(ledger: Any, now: float, half_life_hours: float, into: Usage) -> None:
    """Add a ledger's ended GPU time ({"hours": {hour: GPU-seconds}, "carry": [decayed, at],
    "days": {day: GPU-seconds}}) to `into`."""
    if not isinstance(ledger, dict):
        return
    days = ledger.get("days")
    for day, seconds in (days.items() if isinstance(days, dict) else ()):
        try:
            if float(day) + DAY > now - WEEK and number(seconds) and seconds > 0:
                into.week += seconds / 3600.0
        except ValueError:
            continue
    rate = math.log(2) / (half_life_hours * 3600.0)
    hours = ledger.get("hours")
    for hour, seconds in (hours.items() if isinstance(hours, dict) else ()):
        try:
            start = float(hour)
        except ValueError:
            continue
        if not number(seconds) or seconds <= 0 or start > now:
            continue
        if start + 3600 > now - DAY:
            into.day += seconds / 3600.0
        into.decayed += seconds / 3600.0 * math.exp(-rate * max(0.0, now - start - 1800))
    carry = ledger.get("carry")
    if isinstance(carry, list) and len(carry) == 2 and all(number(v) for v in carry) and carry[0] > 0:
        into.decayed += carry[0] * math.exp(-rate * max(0.0, now - carry[1]))


class AdminPolicy:
    """The admin's policy file in the pool's folder, if it is the admin's (root or the folder's
    owner owns it, no one else may write it, it parses); else this server's own policy."""

    def __init__(self, folder: Path, base: Policy):
        self.folder, self.base = folder, base
        self._policy: tuple[Any, Policy] = (None, base)
        self.problem: Optional[str] = None  # why the admin's file is not applied, if so

    def last(self) -> Policy:
        """The policy as last read (no file system: safe on the event loop)."""
        return self._policy[1]

    def read(self) -> Policy:
        """The policy now (the file read again only when it changed); a problem is logged once."""
        try:
            top = Fd(os.open(self.folder, DIR))
        except OSError:
            return self.base
        try:
            owner = os.fstat(top.fd).st_uid
            try:
                info = os.stat(POLICY, dir_fd=top.fd, follow_symlinks=False)
            except FileNotFoundError:
                self._policy, self.problem = (None, self.base), None
                return self.base
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size, info.st_uid, info.st_mode)
            if stamp == self._policy[0]:
                return self._policy[1]
            problem, policy = None, self.base
            if info.st_uid not in (0, owner) or info.st_mode & 0o022 or not stat.S_ISREG(info.st_mode):
                problem = "it is not the admin's (owned by root or the folder's owner, writable by no one else)"
            else:
                data = load(top.fd, POLICY, info.st_uid, limit=MAX_POLICY)
                try:
                    policy = Policy.from_json(data)
                except PolicyError as exc:
                    problem = str(exc) if data is not None else "it is not readable JSON"
            if problem:
                log.error("the GPU policy %s is not applied: %s", self.folder / POLICY, problem)
            self._policy, self.problem = (stamp, policy), problem
            return policy
        finally:
            top.close()


class Rivals:
    """Which waiting jobs of the host (their tickets) go before this one, by the policy's order,
    and could take the free devices; each only while it is patient (see TICKET_PATIENCE)."""

    def __init__(self) -> None:
        self._fitting: dict[tuple[str, str], float] = {}  # tickets that fit the free devices, since when

    def ahead(self, tickets: list[dict], me: Waiting, is_me: Callable[[dict], bool], free: int, policy: Policy,
              users: dict[str, Usage], projects: dict[str, Usage]) -> list[Waiting]:
        """Waiting jobs of the host that go before this one (by the policy's order) and could take
        the free devices, and still may (see TICKET_PATIENCE): not one its own quota holds (each
        reader works that out itself, whatever the ticket says)."""
        now, seen, rivals = time.monotonic(), set(), []
        for t in tickets:
            key = (t["_folder"], t["job"])
            seen.add(key)
            if is_me(t) or t["count"] > free:
                self._fitting.pop(key, None)
                continue
            rival = waiting_of(t, policy)
            if hold(rival, policy, users, projects):
                self._fitting.pop(key, None)
            elif now - self._fitting.setdefault(key, now) < TICKET_PATIENCE:
                rivals.append(rival)
        for key in set(self._fitting) - seen:
            del self._fitting[key]
        ranked = order([*rivals, me], users)
        return ranked[:ranked.index(me)]

    @staticmethod
    def place(tickets: list[dict], me: Waiting, is_me: Callable[[dict], bool], policy: Policy,
              users: dict[str, Usage], projects: dict[str, Usage]) -> str:
        """Where this job stands in the host's queue, and the rule that puts the first job
        ahead of it there, in words (for a job that waits because no device is free)."""
        waiting = [w for t in tickets if not is_me(t)
                   if not hold(w := waiting_of(t, policy), policy, users, projects)]
        ranked = order([*waiting, me], users)
        return why_behind(me, ranked[:ranked.index(me)], users)


def usage(records: list[dict], ledgers: list[tuple[int, Any]], policy: Policy
          ) -> tuple[dict[str, Usage], dict[str, Usage]]:
    """Each user's and each project's GPU use: live records (from when their process
    began) and the ledgers' ended time, by the files' owners."""
    now, half = time.time(), policy.half_life_hours
    rate = math.log(2) / (half * 3600.0)
    users: dict[str, Usage] = {}
    projects: dict[str, Usage] = {}
    for record in records:
        gpus, start = len(set(record["gpus"])), min(now, record["_start"])
        project = record.get("project")
        for used in (users.setdefault(user_name(record["_uid"]), Usage()),
                     projects.setdefault(project, Usage()) if isinstance(project, str) else None):
            if used is not None:
                used.gpus += gpus
                used.running += 1
                used.day += gpus * (now - max(start, now - DAY)) / 3600.0
                used.week += gpus * (now - max(start, now - WEEK)) / 3600.0
                used.decayed += gpus * (1 - math.exp(-rate * (now - start))) / rate / 3600.0
    for uid, ledger in ledgers:
        ledger_usage(ledger, now, half, users.setdefault(user_name(uid), Usage()))
        found = ledger.get("projects") if isinstance(ledger, dict) else None
        for project, part in list(found.items())[:MAX_PROJECTS] if isinstance(found, dict) else ():
            ledger_usage(part, now, half, projects.setdefault(str(project), Usage()))
    return users, projects


def _buckets(found: Any, gpus: int, start: float, end: float, size: float) -> dict[str, float]:
    """GPU-seconds by bucket of `size` seconds, with the span from `start` to `end` added."""
    buckets = {k: v for k, v in found.items() if number(v)} if isinstance(found, dict) else {}
    at = start
    while at < end:
        bucket = math.floor(at / size) * size
        upto = min(end, bucket + size)
        buckets[str(bucket)] = buckets.get(str(bucket), 0.0) + gpus * (upto - at)
        at = upto
    return buckets


def add_span(ledger: dict, gpus: int, start: float, end: float, half_life_hours: float) -> None:
    """GPU-seconds from `start` to `end` into the ledger's hours (and days, for the week);
    hours older than a day (and an hour) folded into its decayed carry, days older than a
    week dropped, so that it stays small."""
    hours = _buckets(ledger.get("hours"), gpus, start, end, 3600)
    days = _buckets(ledger.get("days"), gpus, start, end, DAY)
    ledger["days"] = {k: v for k, v in days.items() if float(k) + DAY > end - WEEK}
    cutoff = end - DAY - 3600
    old = {k: v for k, v in hours.items() if float(k) < cutoff}
    if old:
        folded = Usage()
        ledger_usage({"hours": old, "carry": ledger.get("carry")}, end, half_life_hours, folded)
        ledger["carry"] = [folded.decayed, end]
        hours = {k: v for k, v in hours.items() if k not in old}
    ledger["hours"] = hours


def account(ledger: dict, gpus: int, start: float, end: float, project: Any, half_life_hours: float) -> dict:
    """The ledger with a job's GPU time added, for its user and its project."""
    add_span(ledger, gpus, start, end, half_life_hours)
    if isinstance(project, str):
        projects = ledger.setdefault("projects", {})
        if isinstance(projects, dict) and (project in projects or len(projects) < MAX_PROJECTS):
            add_span(projects.setdefault(project, {}), gpus, start, end, half_life_hours)
    return ledger


def waiting_of(ticket: dict, policy: Policy) -> Waiting:
    """A ticket as the policy sees it: its priority capped for its owner (never as written)."""
    user = user_name(ticket["_uid"])
    asked = ticket.get("priority")
    asked = asked if isinstance(asked, int) and not isinstance(asked, bool) else 0
    project = ticket.get("project")
    return Waiting(f"{ticket['_folder']}/{ticket['job']}", user, ticket["count"], ticket["since"],
                   policy.priority(user, asked), project if isinstance(project, str) else None, asked)


def host_view(devices: list[int], records: list[dict], tickets: list[dict], ledgers: list[tuple[int, Any]],
              policy: Policy, shown: Callable[[dict], bool]) -> dict[str, Any]:
    """The host as an admin reads it: each device and who holds it, the host's queue in the
    policy's order with the rule holding each job, each user's and project's use. A job's id
    is given only where `shown` says so (the viewer's own, or every job for an admin)."""
    users, projects = usage(records, ledgers, policy)
    holders: dict[int, list[dict]] = {i: [] for i in devices}
    for record in records:
        for i in sorted(set(record["gpus"])):
            holders.setdefault(i, []).append({
                "user": user_name(record["_uid"]), "job": record["job"] if shown(record) else None,
                "project": record.get("project") if isinstance(record.get("project"), str) else None,
                "since": record["_start"]})
    queue, ahead = [], []
    by_key = {f"{t['_folder']}/{t['job']}": t for t in tickets}
    for job in order([waiting_of(t, policy) for t in tickets], users):
        why = hold(job, policy, users, projects) or why_behind(job, ahead, users)
        queue.append({"user": job.user, "job": by_key[job.key]["job"] if shown(by_key[job.key]) else None,
                      "gpus": job.count, "priority": job.priority, "project": job.project,
                      "since": job.since, "waiting": why})
        ahead.append(job)
    return {"devices": [{"index": i, "holders": h} for i, h in sorted(holders.items())], "queue": queue,
            "users": {name: vars(u) for name, u in sorted(users.items())},
            "projects": {name: vars(u) for name, u in sorted(projects.items())}}


def contenders(tickets: list[dict], records: list[dict], ledgers: list[tuple[int, Any]], policy: Policy
               ) -> tuple[list[Waiting], dict[str, Usage]]:
    """The host's waiting jobs that a quota does not hold, in the policy's order, and each
    user's use (what preemption weighs)."""
    users, projects = usage(records, ledgers, policy)
    waiting = [w for w in (waiting_of(t, policy) for t in tickets) if not hold(w, policy, users, projects)]
    return order(waiting, users), users
