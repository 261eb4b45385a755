"""Who gets the next free GPU of a shared host, as a pure rule every server on the host applies
the same way (the admin writes it once, in the pool's policy file; see jobs/gpupool.py).

The order is Slurm's multifactor order, kept readable: `priority` first (higher first, an
integer the job asks for, capped by what the admin allows its user: 0 unless the admin says
more, so that no one jumps ahead of others by asking; a user's own jobs are still ordered by
what they asked, as Slurm lets users reorder their own jobs), then fair share (the
user's recent GPU-hours, each hour counting half as much every `half_life_hours`, as Slurm's
decayed usage: the user who used less goes first), then age (older first). Quotas per user and
per project (GPUs at once, running jobs, GPU-hours in the last 24 hours) hold a job that would
go over them, and refuse one that never can fit (more GPUs than its quota), each with a reason
in words.

Why pure: each server decides for itself from the same files (there is no daemon to ask), so
the rule must depend on nothing but what it is given; and it is cheap, so that a decision over
a thousand waiting jobs stays within milliseconds (tests/benchmarks/bench_policy.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

#: the lowest and highest priority a job may ask for (the admin's cap applies within)
PRIORITY_RANGE = (-1000, 1000)
DAY = 24 * 3600.0
WEEK = 7 * DAY


class PolicyError(ValueError):
    """The admin's policy file says something that cannot be applied: the message names the field."""


@dataclass(frozen=True)
class Idle:
    """GPUs given back: a job whose GPUs all stayed under `min_util` percent for `window`
    seconds is stopped (`stop`), or first warned and stopped `grace` seconds later unless
    they are used again (`warn`)."""

    min_util: float
    window: float
    action: str = "stop"
    grace: float = 600.0

    def words(self) -> str:
        return f"under {self.min_util:g}% for {duration(self.window)}"


@dataclass(frozen=True)
class Limits:
    """What one user (or project) may have; None is no limit."""

    max_priority: Optional[int] = None  # users only: the highest priority their jobs get
    gpus: Optional[int] = None  # GPUs at once
    running: Optional[int] = None  # GPU jobs at once
    gpu_hours_per_day: Optional[float] = None  # in the last 24 hours
    idle: Optional[Idle] = None  # users only: when their jobs' idle GPUs are taken back

    def merged(self, over: Limits) -> Limits:
        """These limits with what `over` sets replacing them (a user's entry over the defaults)."""
        return Limits(*(o if o is not None else d for d, o in zip(self._values(), over._values())))

    def _values(self) -> tuple:
        return self.max_priority, self.gpus, self.running, self.gpu_hours_per_day, self.idle


@dataclass(frozen=True)
class Policy:
    """The host's rule: the half-life of usage, the limits of every user (`default`, then each
    named user's own) and of each project."""

    half_life_hours: float = 24.0
    default: Limits = Limits(max_priority=0)
    users: Mapping[str, Limits] = field(default_factory=dict)
    projects: Mapping[str, Limits] = field(default_factory=dict)

    def limits(self, user: str) -> Limits:
        own = self.users.get(user)
        return self.default.merged(own) if own else self.default

    def priority(self, user: str, asked: int) -> int:
        """The priority a job of `user` gets: what it asked for, at most what the admin allows."""
        cap = self.limits(user).max_priority
        return asked if cap is None else min(asked, cap)

    @classmethod
    def from_json(cls, data: Any) -> Policy:
        """The policy file's content (JSON), checked: an error names the field it is about."""
        if not isinstance(data, dict):
            raise PolicyError("the policy must be a JSON object")
        unknown = set(data) - {"half_life_hours", "default", "users", "projects"}
        if unknown:
            raise PolicyError(f"unknown field {sorted(unknown)[0]!r} (half_life_hours, default, users, projects)")
        half = data.get("half_life_hours", 24.0)
        if not _number(half) or half <= 0:
            raise PolicyError(f"half_life_hours: {half!r} is not a positive number of hours")
        default = Limits(max_priority=0).merged(_limits(data.get("default", {}), "default"))
        users = _named(data.get("users", {}), "users")
        projects = _named(data.get("projects", {}), "projects")
        return cls(float(half), default, users, projects)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _limits(data: Any, where: str) -> Limits:
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be an object of limits")
    known = {"max_priority", "gpus", "running", "gpu_hours_per_day", "idle"}
    if set(data) - known:
        raise PolicyError(f"{where}.{sorted(set(data) - known)[0]}: unknown limit ({', '.join(sorted(known))})")
    for name in ("max_priority", "gpus", "running"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise PolicyError(f"{where}.{name}: {value!r} is not a whole number")
        if name != "max_priority" and value is not None and value < 0:
            raise PolicyError(f"{where}.{name}: {value} is less than 0")
    hours = data.get("gpu_hours_per_day")
    if hours is not None and (not _number(hours) or hours < 0):
        raise PolicyError(f"{where}.gpu_hours_per_day: {hours!r} is not a number of hours (0 or more)")
    return Limits(data.get("max_priority"), data.get("gpus"), data.get("running"),
                  float(hours) if hours is not None else None, _idle(data.get("idle"), f"{where}.idle"))


def _idle(data: Any, where: str) -> Optional[Idle]:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be an object: min_util, window_minutes, action, grace_minutes")
    known = {"min_util", "window_minutes", "action", "grace_minutes"}
    if set(data) - known:
        raise PolicyError(f"{where}.{sorted(set(data) - known)[0]}: unknown field ({', '.join(sorted(known))})")
    util, window, grace = data.get("min_util"), data.get("window_minutes"), data.get("grace_minutes", 10)
    if not _number(util) or not 0 < util <= 100:
        raise PolicyError(f"{where}.min_util: {util!r} is not a percentage (more than 0, at most 100)")
    for name, value in (("window_minutes", window), ("grace_minutes", grace)):
        if not _number(value) or value <= 0:
            raise PolicyError(f"{where}.{name}: {value!r} is not a positive number of minutes")
    action = data.get("action", "stop")
    if action not in ("stop", "warn"):
        raise PolicyError(f"{where}.action: {action!r} is neither 'stop' nor 'warn'")
    return Idle(float(util), float(window) * 60, action, float(grace) * 60)


def duration(seconds: float) -> str:
    """Seconds in words: 30 min, 2 h, 1.8 s."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _named(data: Any, where: str) -> dict[str, Limits]:
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be an object of names to limits")
    return {str(name): _limits(value, f"{where}.{name}") for name, value in data.items()}


# -- usage ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """GPUs held from `start` to `end` (None: still held), in seconds since the epoch."""

    gpus: int
    start: float
    end: Optional[float] = None


def decayed_hours(spans: Iterable[Span], now: float, half_life_hours: float) -> float:
    """GPU-hours of the spans, each moment weighted 2^-(age / half-life): the integral in closed form."""
    half = half_life_hours * 3600.0
    rate = math.log(2) / half
    total = 0.0
    for s in spans:
        end = min(now, s.end if s.end is not None else now)
        if end > s.start:
            total += s.gpus * (math.exp(-rate * (now - end)) - math.exp(-rate * (now - s.start))) / rate
    return total / 3600.0


def hours_since(spans: Iterable[Span], now: float, since: float) -> float:
    """GPU-hours of the spans after `since` (the last 24 hours, for the daily quota)."""
    total = 0.0
    for s in spans:
        end = min(now, s.end if s.end is not None else now)
        total += s.gpus * max(0.0, end - max(s.start, since))
    return total / 3600.0


@dataclass
class Usage:
    """One user's (or project's) use of the host's GPUs, as every server sees it."""

    gpus: int = 0  # held now
    running: int = 0  # GPU jobs running now
    day: float = 0.0  # GPU-hours in the last 24 hours
    decayed: float = 0.0  # decayed GPU-hours (fair share)
    week: float = 0.0  # GPU-hours in the last 7 days (what an admin reads; no rule uses it)


def usage_of(spans: Iterable[Span], now: float, half_life_hours: float) -> Usage:
    spans = list(spans)
    live = [s for s in spans if s.end is None or s.end > now]
    return Usage(gpus=sum(s.gpus for s in live), running=len(live), day=hours_since(spans, now, now - DAY),
                 decayed=decayed_hours(spans, now, half_life_hours), week=hours_since(spans, now, now - WEEK))


# -- the decision ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Waiting:
    """A job that waits for GPUs, anywhere on the host."""

    key: str  # unique on the host (its service's folder and its id)
    user: str
    count: int
    since: float  # when it was queued
    priority: int = 0  # as the policy capped it
    project: Optional[str] = None
    asked: Optional[int] = None  # as the job asked (None: the same): orders a user's own jobs

    @property
    def own(self) -> int:
        return self.priority if self.asked is None else self.asked


def order(waiting: Iterable[Waiting], usage: Mapping[str, Usage]) -> list[Waiting]:
    """Waiting jobs, the next to get GPUs first: priority, then fair share, then age."""
    return sorted(waiting, key=lambda w: (-w.priority, _decayed(usage, w.user), -w.own, w.since, w.key))


def _decayed(usage: Mapping[str, Usage], user: str) -> float:
    found = usage.get(user)
    return found.decayed if found else 0.0


def hold(job: Waiting, policy: Policy, users: Mapping[str, Usage], projects: Mapping[str, Usage]) -> Optional[str]:
    """Why a quota holds the job now (None if none does), in words."""
    checks = [(job.user, policy.limits(job.user), users.get(job.user) or Usage(), "")]
    if job.project and job.project in policy.projects:
        checks.append((job.project, policy.projects[job.project], projects.get(job.project) or Usage(), "project "))
    for name, limits, used, kind in checks:
        if limits.gpus is not None and used.gpus + job.count > limits.gpus:
            return f"{kind}{name} holds {_n(used.gpus, 'GPU')} of {limits.gpus} allowed at once"
        if limits.running is not None and used.running + 1 > limits.running:
            return f"{kind}{name} runs {_n(used.running, 'GPU job')} of {limits.running} allowed at once"
        if limits.gpu_hours_per_day is not None and used.day >= limits.gpu_hours_per_day:
            return (f"{kind}{name} has used {used.day:.1f} GPU-h in the last 24 h, the most allowed is "
                    f"{limits.gpu_hours_per_day:g}")
    return None


def refuse(user: str, project: Optional[str], count: int, policy: Policy) -> Optional[str]:
    """Why a job can never start under the quotas (None if it can), in words."""
    limits = [(user, policy.limits(user), "")]
    if project and project in policy.projects:
        limits.append((project, policy.projects[project], "project "))
    for name, limit, kind in limits:
        if limit.gpus is not None and count > limit.gpus:
            return f"asks for {_n(count, 'GPU')}; {kind}{name} may hold {limit.gpus} at once"
        if limit.running == 0 or limit.gpu_hours_per_day == 0:
            return f"{kind}{name} may not run GPU jobs on this host"
    return None


def why_behind(job: Waiting, ahead: list[Waiting], usage: Mapping[str, Usage]) -> str:
    """Why the jobs ahead go first, in words: the rule that put the first of them there."""
    place = f"#{len(ahead) + 1} for a GPU"
    if not ahead:
        return place
    first = ahead[0]
    if first.priority > job.priority:
        return f"{first.user}'s job has priority {first.priority}, more than {job.priority}; {place}"
    if first.user == job.user and first.own > job.own:
        return f"{job.user}'s own job with priority {first.own} goes first; {place}"
    mine, theirs = _decayed(usage, job.user), _decayed(usage, first.user)
    if first.user != job.user and theirs < mine:
        return f"{job.user} has used {gpu_time(mine)} lately, more than {first.user} ({gpu_time(theirs)}); {place}"
    return f"older jobs first; {place}"


@dataclass(frozen=True)
class Running:
    """A running job that holds GPUs, as preemption sees it."""

    key: str
    user: str
    gpus: int
    priority: int  # as the policy capped it
    started: float
    preemptible: bool
    asked: Optional[int] = None  # as the job asked (None: the same)

    @property
    def own(self) -> int:
        return self.priority if self.asked is None else self.asked


def outranks(job: Waiting, victim: Running, usage: Mapping[str, Usage]) -> Optional[str]:
    """Why `job` may take `victim`'s GPUs (None if it may not): a higher priority (as capped;
    between one user's own jobs, as asked), or, at the same priority, its user used fewer
    GPU-hours lately than the victim's (an under-share user).
    Only a job marked preemptible is ever a victim."""
    if not victim.preemptible:
        return None
    if job.priority > victim.priority:
        return f"{job.user}'s job has priority {job.priority}, more than its {victim.priority}"
    if job.user == victim.user and job.priority == victim.priority and job.own > victim.own:
        return f"{job.user}'s own job has priority {job.own}, more than its {victim.own}"
    mine, theirs = _decayed(usage, job.user), _decayed(usage, victim.user)
    if job.priority == victim.priority and job.user != victim.user and mine < theirs:
        return (f"{job.user} has used {gpu_time(mine)} lately, less than {victim.user} ({gpu_time(theirs)}), "
                "at the same priority")
    return None


def victims(job: Waiting, running: Iterable[Running], free: int, usage: Mapping[str, Usage]
            ) -> list[tuple[Running, str]]:
    """The preemptible jobs to stop so that `job` gets its GPUs, each with why, the least
    entitled first (lowest priority, then the most used user, then the youngest); none at all
    when even all of them would not free enough (stopping some would help no one)."""
    if job.count <= free:
        return []
    eligible = [(r, why) for r in running if (why := outranks(job, r, usage))]
    eligible.sort(key=lambda e: (e[0].priority, -_decayed(usage, e[0].user), e[0].own, -e[0].started, e[0].key))
    chosen, freed = [], free
    for victim, why in eligible:
        if freed >= job.count:
            break
        chosen.append((victim, why))
        freed += victim.gpus
    return chosen if freed >= job.count else []


def gpu_time(hours: float) -> str:
    """GPU time in the unit that reads best: 31.0 GPU-h, 12 GPU-min, 40 GPU-s."""
    if hours >= 1:
        return f"{hours:.1f} GPU-h"
    if hours * 60 >= 1:
        return f"{hours * 60:.0f} GPU-min"
    return f"{hours * 3600:.0f} GPU-s"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
