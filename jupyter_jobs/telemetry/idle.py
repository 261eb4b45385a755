"""Idle GPUs given back: a job whose GPUs all sat under the policy's `min_util` for its
`window` is stopped (failed, reason `idle`, the rule in its message), or first warned (a note
on the job) and stopped after the grace unless its GPUs are used again.

Why from telemetry: the utilization is what NVML reports for the job's own devices in the
samples telemetry takes anyway, so the rule costs no extra reads; a job without figures (no
NVML) is never judged idle.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Callable, Optional

from ..domain.policy import Idle, duration


class IdleWatch:
    def __init__(self, rule: Callable[[], Optional[Idle]], stop: Callable[[str, str], Awaitable[None]],
                 note: Callable[[str, str], Awaitable[None]]):
        self.rule, self.stop, self.note = rule, stop, note
        self._idle_since: dict[str, float] = {}  # job -> when its GPUs went idle (monotonic)
        self._warned: dict[str, float] = {}  # job -> when it was warned

    async def observe(self, utilization: dict[str, float], now: Optional[float] = None) -> None:
        """One round of samples: each GPU job's busiest device's utilization (percent)."""
        rule, now = self.rule(), time.monotonic() if now is None else now
        for job in set(self._idle_since) - set(utilization):  # ended, or no figures this round
            self._idle_since.pop(job, None)
            self._warned.pop(job, None)
        if rule is None:
            return
        for job, util in utilization.items():
            if util >= rule.min_util:
                self._idle_since.pop(job, None)
                if self._warned.pop(job, None) is not None:
                    await self.note(job, "idle GPUs: in use again, it keeps them")
                continue
            idle_for = now - self._idle_since.setdefault(job, now)
            if idle_for < rule.window:
                continue
            if rule.action == "warn" and job not in self._warned:
                self._warned[job] = now
                await self.note(job, f"idle GPUs: they sat {rule.words()}; it stops in {duration(rule.grace)} "
                                     "unless they are used")
            elif rule.action == "stop" or now - self._warned[job] >= rule.grace:
                self._idle_since.pop(job, None)
                await self.stop(job, f"stopped: its GPUs sat idle ({rule.words()}), given back to the host")
