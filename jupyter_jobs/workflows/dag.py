"""Which jobs of a workflow run may go now, and the run's status: a pure function of the
statuses of its jobs (as Argo decides a DAG's ready nodes), executed elsewhere (`runs`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

from ..domain.job import Job
from ..domain.status import JobStatus
from ..storage.runs import RunState


@dataclass
class Step:
    """What one pass over a run decides."""

    skip: dict[str, str] = field(default_factory=dict)  # job id -> why it can never run
    release: list[str] = field(default_factory=list)  # jobs whose needs are over: they may start
    fill: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # ... first given (id, node) outputs
    status: Optional[str] = None  # the run's status once this step is done


def name_of(node: str) -> str:
    """A matrix job's node `train[lr=0.1]` belongs to the workflow job `train`."""
    return node.split("[")[0]


def run_status(newest: dict[str, tuple[JobStatus, list[str]]], forgiving: set[str]) -> Optional[str]:
    """A run's status from the newest job of each node: (status, after) by node key."""
    if any(not s.is_terminal() for s, _ in newest.values()):
        return "running" if any(s != JobStatus.QUEUED or not after for s, after in newest.values()) else "queued"
    if any(s == JobStatus.CANCELLED for s, _ in newest.values()):
        return "cancelled"
    failed = [n for n, (s, _) in newest.items() if s == JobStatus.SKIPPED
              or (s == JobStatus.FAILED and name_of(n) not in forgiving)]
    return "failed" if failed else "succeeded"


def step(states: Sequence[RunState], *, native: bool, forgiving: set[str],
         takes_outputs: Callable[[str], bool]) -> Step:
    """One pass: a queued job whose needs all ended is let go (or first given their outputs) if
    they succeeded (or failed `forgiving`), skipped if one did not. On a backend that orders the
    run itself (`native`), a need it has launched counts as over: the engine keeps the order."""
    by_id = {s.id: s for s in states}
    out = Step()
    now: dict[str, tuple[JobStatus, list[str]]] = {}
    for job_id, node, status, after, _ in states:
        if status != JobStatus.QUEUED or not after:
            continue
        needed = [(i, by_id[i].node, by_id[i].status) for i in after if i in by_id]
        if any(not s.is_terminal() and not (native and by_id[i].launched) for i, _, s in needed):
            continue
        broken = [(n, s) for _, n, s in needed if s.is_terminal() and s != JobStatus.SUCCEEDED
                  and not (s == JobStatus.FAILED and name_of(n) in forgiving)]
        if broken:
            what = ", ".join(f"{n} {s.value}" for n, s in broken[:3])
            out.skip[job_id] = f"skipped: a job it needs did not succeed ({what})"
            now[job_id] = (JobStatus.SKIPPED, after)
            continue
        if takes_outputs(node):
            out.fill.append((job_id, [(i, n) for i, n, _ in needed]))
        else:
            out.release.append(job_id)
        now[job_id] = (status, [])
    newest: dict[str, tuple[JobStatus, list[str]]] = {}
    for job_id, node, status, after, _ in states:
        newest[node or job_id] = now.get(job_id, (status, after))
    out.status = run_status(newest, forgiving)
    return out


def latest(jobs: list[Job]) -> list[Job]:
    """The newest job of each node (a rerun makes new ones), in the run's order."""
    by_node: dict[str, Job] = {}
    for job in jobs:
        by_node[job.node or job.id] = job
    return list(by_node.values())


@functools.lru_cache(maxsize=4096)
def matrix_of(key: Optional[str]) -> dict[str, str]:
    """A node key's matrix values: `train[lr=0.1,bs=32]` -> {'lr': '0.1', 'bs': '32'}."""
    if not key or "[" not in key:
        return {}
    return dict(part.split("=", 1) for part in key[key.index("[") + 1:-1].split(",") if "=" in part)
