"""What the service reports: a Job, its statuses, and verdict(), the one rule that turns how
an execution ended into a terminal status. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .spec import JobSpec
from .status import FailureReason, JobStatus, StopReason


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outcome:
    """How an execution ended. `reason` is set only by what the backend itself detected."""

    exit_code: Optional[int]
    reason: Optional[FailureReason] = None
    message: Optional[str] = None
    #: the command never ran (its launch was never released): the job may start again
    not_started: bool = False
    #: the engine dropped it unrun because a job it depends on did not succeed (Slurm's own DAG)
    skipped: bool = False


@dataclass(frozen=True)
class Kept:
    """What became of one output a job that succeeded declared (a new dataset version), or why
    it could not be kept (`failed`: the job then fails, saying so)."""

    message: str
    failed: bool = False


@dataclass(frozen=True)
class Verdict:
    """The terminal status an outcome means, with the fields recorded beside it."""

    status: JobStatus
    reason: Optional[FailureReason] = None
    message: Optional[str] = None


def verdict(outcome: Outcome, stop_reason: Optional[StopReason], timeout: Optional[float] = None,
            why: str = "") -> Verdict:
    """Outcome + why the service stopped the job (if it did) -> its terminal status.

    A job that exited 0 on its own before a stop reached it succeeded; a stop the service
    asked for wins over the exit code the stop caused; otherwise the backend's own finding
    (timeout, OOM, lost...) wins over the exit code."""
    if outcome.exit_code == 0 and outcome.reason is None:
        return Verdict(JobStatus.SUCCEEDED)
    if outcome.skipped and stop_reason is None:
        return Verdict(JobStatus.SKIPPED, message=outcome.message)
    if stop_reason == "cancel":
        return Verdict(JobStatus.CANCELLED, message="cancelled by the user")
    if stop_reason == "preempt":  # what is recorded only if it was not queued again (see runner)
        return Verdict(JobStatus.FAILED, FailureReason.BACKEND_ERROR, "stopped for a job ahead of it")
    if stop_reason == "idle":
        return Verdict(JobStatus.FAILED, FailureReason.IDLE, why or "stopped: its GPUs sat idle")
    if stop_reason == "timeout":
        limit = f" of {timeout:g} s" if timeout else ""
        return Verdict(JobStatus.FAILED, FailureReason.TIMEOUT, f"stopped after exceeding its time limit{limit}")
    if outcome.reason is not None:
        return Verdict(JobStatus.FAILED, outcome.reason, outcome.message)
    return Verdict(JobStatus.FAILED, FailureReason.EXIT_CODE,
                   outcome.message or f"the command exited with code {outcome.exit_code}")



class Endpoint(BaseModel):
    """One of a job's exposed ports as clients see it."""

    name: str
    port: int = Field(description="the port the job listens on ($PORT_<NAME>)")
    path: str = Field(description="where to reach it, relative to the server's base URL (its key is its credential)")
    url: Optional[str] = Field(None, description="its own origin, where the server is configured with one "
                                                 "(JobsApp.endpoint_url); open this rather than `path` then")
    state: Literal["waiting", "ready", "gone"] = Field(description="waiting: the job or its port is not up yet; "
                                                      "ready: the port answers (or its health path returns 2xx); "
                                                      "gone: the job ended")


#: the origin of a kernel job: notebook-kernel:<the kernel's id>
KERNEL_JOB_ORIGIN = "notebook-kernel:"


class Job(BaseModel):
    """A submitted job as the service records it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    status: JobStatus = JobStatus.QUEUED
    reason: Optional[FailureReason] = None
    message: Optional[str] = None
    exit_code: Optional[int] = None
    spec: JobSpec
    backend: str
    project: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    gpus: list[int] = Field(default_factory=list)
    snapshot: Optional[str] = None
    notes: list[str] = Field(default_factory=list)
    waiting: Optional[str] = Field(None, description="why a queued job has not started yet")
    attempt: int = Field(1, description="1 for the first run; more after retries and preemptions")
    preempted: int = Field(0, description="how many times it was stopped for a job ahead of it and queued again")
    not_before: Optional[datetime] = Field(None, description="a retry waits until then")
    workflow: Optional[str] = Field(None, description="the workflow run this job belongs to")
    node: Optional[str] = Field(None, description="its job in the workflow: name, or name[k=v,...] for a matrix")
    after: list[str] = Field(default_factory=list, description="jobs of its run it waits for")
    schedule: Optional[str] = Field(None, description="the schedule that started this job")
    progress: Optional[float] = Field(None, description="0..1 when the job reports it (a `progress` series, a "
                                      "fraction or a percentage; or `total_steps`); set while it runs and after")
    origin: Optional[str] = Field(None, description="who submitted it: kernel:<kernel id> or browser:<id> "
                                  "(the panel notifies that browser when it ends)")
    endpoints: list[Endpoint] = Field(default_factory=list, description="the ports it serves, with their state")
    inputs: dict[str, str] = Field(default_factory=dict, exclude=True)  # inputs folder -> job id
    dir: Optional[str] = Field(None, exclude=True)  # the job's folder: log, artifacts, workspace copy
    backend_state: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @computed_field(description="job; notebook (a notebook job); kernel (a notebook's kernel running as a job)")
    @property
    def kind(self) -> Literal["job", "notebook", "kernel"]:
        if (self.origin or "").startswith(KERNEL_JOB_ORIGIN):
            return "kernel"
        return "notebook" if self.spec.notebook else "job"

    @computed_field(description="the notebook a kernel job is the kernel of, or the one a notebook job runs")
    @property
    def notebook_path(self) -> Optional[str]:
        if self.kind == "kernel":
            return self.spec.env.get("JPY_SESSION_NAME")
        return self.spec.notebook

    def public(self) -> dict[str, Any]:
        """The job as the REST API returns it."""
        data = self.model_dump(mode="json")
        data["spec"] = self.spec.public()
        data["name"] = self.spec.name
        return data

