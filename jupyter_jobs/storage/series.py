"""A job's metrics as series. Two append-only files feed them: the custom lines a job writes
to `$JOB_METRICS_FILE` (JSON objects: `{"step": 10, "loss": 0.42}`) and the system samples
the service takes (`telemetry.jsonl`, CPU, memory, GPUs). Both are read from offsets, so a
follower resumes where it stopped and a summary only ever parses the new lines.

The job's file is the job's: it is opened without following links and must be a regular
file; a line that is not a JSON object of numbers is counted as bad, never fatal.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .files import open_regular
from ..domain.errors import SpecError

METRICS_DIR = "metrics"  # <job dir>/metrics/, writable by the job (mounted in containers)
METRICS_FILE = "metrics.jsonl"
TELEMETRY_FILE = "telemetry.jsonl"  # <job dir>/, written by the service only
#: how much of one read is parsed at a time
CHUNK = 4 << 20


@dataclass
class Cursor:
    """Where a reader stopped: bytes read of the job's file, its lines so far (a line without a
    step is placed at its line number), and bytes read of the service's samples."""

    custom: int = 0
    lines: int = 0
    system: int = 0

    def __str__(self) -> str:
        return f"{self.custom}.{self.lines}.{self.system}"

    @classmethod
    def parse(cls, text: Optional[str]) -> Cursor:
        if not text:
            return cls()
        try:
            custom, lines, system = (int(p) for p in text.split("."))
            if min(custom, lines, system) < 0 or max(custom, lines, system) >= 2**62:
                raise ValueError
        except ValueError:
            raise SpecError.one("since", f"{text[:40]!r} is not a cursor from a previous reply's `next`") from None
        return cls(custom, lines, system)


@dataclass
class Series:
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[Optional[float]] = field(default_factory=list)
    timed: bool = False  # whether any point has a time

    def public(self) -> dict[str, Any]:
        """Columns; `times` is null when no point has one (a third less to send)."""
        return {"steps": self.steps, "values": self.values, "times": self.times if self.timed else None}


@dataclass
class Batch:
    """Points read in one go, by series name, and how many lines were not metrics."""

    series: dict[str, Series] = field(default_factory=dict)
    bad: int = 0

    def __bool__(self) -> bool:
        return bool(self.series) or self.bad > 0

    def public(self) -> dict[str, dict[str, Any]]:
        return {name: s.public() for name, s in self.series.items()}


_INF = (math.inf, -math.inf)


def _number(value: Any) -> Optional[float]:
    kind = type(value)  # bool is not a number here, and NaN or infinity is no point
    if kind is int or (kind is float and value == value and value not in _INF):
        return value
    return None


def _decode(lines: list[bytes]) -> list[Any]:
    """Each line as JSON; one C call for the whole batch, line by line only if one is bad."""
    try:
        return json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        out: list[Any] = []
        for line in lines:
            try:
                out.append(json.loads(line) if line.strip() else _BLANK)
            except ValueError:
                out.append(None)
        return out


_BLANK = object()  # a line of spaces: not a line at all


def parse(data: bytes, first_line: int, batch: Batch, names: Optional[set[str]] = None) -> int:
    """Add the points of the complete lines in `data` to `batch`; returns the lines seen.
    The hot loop of metrics: it touches each value once, with no call per value."""
    items = [i for i in _decode([line for line in data.split(b"\n") if line]) if i is not _BLANK]
    series, bad = batch.series, 0
    for number, item in enumerate(items, first_line):
        if type(item) is not dict:
            bad += 1
            continue
        step = _number(item.get("step"))
        when = _number(item.get("time"))
        x = number if step is None else step
        found = False
        for key, value in item.items():
            kind = type(value)
            if not (kind is int or (kind is float and value == value and value not in _INF)):
                continue
            if key == "step" or key == "time":
                continue
            found = True
            if names is not None and key not in names:
                continue
            column = series.get(key)
            if column is None:
                column = series[key] = Series()
            column.steps.append(x)
            column.values.append(value)
            column.times.append(when)
            if when is not None:
                column.timed = True
        if not found:
            bad += 1
    batch.bad += bad
    return len(items)


def _read(path: Path, offset: int, limit: int, final: bool) -> tuple[bytes, int]:
    """Complete lines from `offset` (at most `limit` bytes, a whole line more if need be); at
    the end of a finished job, a last line with no newline counts too."""
    fd = open_regular(path)
    if fd is None:
        return b"", offset
    try:
        data = os.pread(fd, limit, offset)
    finally:
        os.close(fd)
    end = data.rfind(b"\n") + 1
    if end == 0 and not final:
        return b"", offset
    if final and len(data) < limit:
        end = len(data)
    return data[:end], offset + end


def read(job_dir: Path, cursor: Cursor, *, names: Optional[set[str]] = None, final: bool = False,
         limit: int = CHUNK, max_size: Optional[int] = None) -> tuple[Batch, Cursor]:
    """The points after `cursor` (blocking: call from a thread). `final`: the job has ended, so
    an unterminated last line is read. The job's file is read up to `max_size` bytes."""
    batch = Batch()
    custom_limit = limit if max_size is None else max(0, min(limit, max_size - cursor.custom))
    data, custom = _read(job_dir / METRICS_DIR / METRICS_FILE, cursor.custom, custom_limit, final)
    lines = cursor.lines + parse(data, cursor.lines, batch, names)
    data, system = _read(job_dir / TELEMETRY_FILE, cursor.system, limit, final)
    parse(data, 0, batch, names)
    return batch, Cursor(custom, lines, system)


def _summarize(batch: Batch, summary: dict[str, dict[str, Any]]) -> None:
    for name, series in batch.series.items():
        entry = summary.get(name)
        low, high = min(series.values), max(series.values)
        if entry is None:
            summary[name] = {"last": series.values[-1], "step": series.steps[-1], "min": low, "max": high,
                             "count": len(series.values)}
        else:
            entry.update(last=series.values[-1], step=series.steps[-1], min=min(entry["min"], low),
                         max=max(entry["max"], high), count=entry["count"] + len(series.values))


def progress(series: dict[str, dict[str, Any]]) -> Optional[float]:
    """0..1 when the job reports it: a `progress` series (a fraction, or a percentage), or a
    `total_steps` series (the step of its last point over its value)."""
    if "progress" in series:
        value = series["progress"]["last"]
        fraction = value / 100 if value > 1 else value
    elif "total_steps" in series and series["total_steps"]["last"]:
        fraction = series["total_steps"]["step"] / series["total_steps"]["last"]
    else:
        return None
    return min(1.0, max(0.0, fraction))


class MetricsReader:
    """Reads jobs' series, and keeps each job's summary (last/min/max/count per series) with
    the cursor it was made at, so that a summary parses only what was added since."""

    def __init__(self, max_size: int = 0):
        self.max_size = max_size or None
        self._summaries: dict[str, tuple[Cursor, dict[str, dict[str, float]], int]] = {}

    def read(self, job_dir: Path, cursor: Cursor, names: Optional[set[str]], final: bool) -> tuple[Batch, Cursor]:
        return read(job_dir, cursor, names=names, final=final, max_size=self.max_size)

    def summary(self, job_id: str, job_dir: Path, final: bool) -> dict[str, Any]:
        """{"series": {name: {last, step, min, max, count}}, "bad_lines": n} (blocking)."""
        cursor, summary, bad = self._summaries.get(job_id) or (Cursor(), {}, 0)
        while True:
            batch, after = self.read(job_dir, cursor, None, final)
            _summarize(batch, summary)
            bad += batch.bad
            if after == cursor:
                break
            cursor = after
        self._summaries[job_id] = (cursor, summary, bad)
        return {"series": summary, "bad_lines": bad}

    def forget(self, job_id: str) -> None:
        self._summaries.pop(job_id, None)
