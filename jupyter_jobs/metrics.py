"""For code running as a job: report metrics that the panel and the cell plot.

    from jupyter_jobs import metrics
    metrics.log(step=10, loss=0.42, acc=0.91)

Each call appends one JSON line to the file named by $JOB_METRICS_FILE, the same lines any
language may write itself (`{"step": 10, "loss": 0.42}`; "time" is added). Outside a job
(no $JOB_METRICS_FILE) it does nothing, so the same code runs anywhere. Standard library only.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional


def log(step: Optional[float] = None, **values: float) -> None:
    """Record `values` (numbers, by name) at `step` (default: the line's number)."""
    path = os.environ.get("JOB_METRICS_FILE")
    if not path:
        return
    point = {"time": round(time.time(), 3), **({} if step is None else {"step": step}), **values}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(point) + "\n")
