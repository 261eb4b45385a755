"""The job history: one database, a row class per aggregate (jobs, workflow runs, schedules).
The only place that speaks SQL is `storage`."""

from __future__ import annotations

from .datasets import DatasetRows
from .db import SCHEMA_VERSION, StoreError, Write
from .definitions import DefinitionRows
from .deployments import DeploymentRows
from .jobs import JobRows
from .runs import RunRows, RunState
from .schedules import ScheduleRows

__all__ = ["SCHEMA_VERSION", "RunState", "Store", "StoreError", "Write"]


class Store(JobRows, RunRows, ScheduleRows, DatasetRows, DefinitionRows, DeploymentRows):
    """Job history. Every public method is a coroutine run on the store's own thread."""
