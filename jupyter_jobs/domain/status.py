"""A job's statuses and why one failed: the words every layer shares."""

from __future__ import annotations

from enum import Enum
from typing import Literal


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a workflow job that never ran: a job it needed did not succeed

    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED)


TERMINAL_STATUSES = tuple(s for s in JobStatus if s.is_terminal())


class FailureReason(str, Enum):
    EXIT_CODE = "exit_code"
    TIMEOUT = "timeout"
    OOM = "oom"
    BACKEND_ERROR = "backend_error"
    LOST = "lost"
    ENVIRONMENT = "environment"  # its packages could not be installed
    IDLE = "idle"  # stopped: its GPUs sat idle (the host's policy gives them back)
    OUTPUT = "output"  # it exited 0, but an output it declares could not be kept


#: why the service stopped a running job (kept across restarts, so a restart finishes the stop)
StopReason = Literal["cancel", "timeout", "preempt", "idle"]
