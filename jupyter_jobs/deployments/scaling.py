"""How many replicas a deployment wants (pure: no I/O): as many as keep about `target` requests
under way each, between min and max; out at once when the last few seconds' peak asks for more,
in only after `scale_in_after` seconds that asked for fewer (to zero when `min` is 0)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

OUT_WINDOW = 5.0  # seconds of load a scale-out looks at


@dataclass
class Scaler:
    wanted: Optional[int] = None  # None: not decided yet (the first pass takes what runs)
    changed_at: float = 0.0
    samples: deque = field(default_factory=deque)  # (time, requests under way and waiting)

    def decide(self, now: float, load: int, low: int, high: int, target: int, scale_in_after: float,
               running: int) -> int:
        if self.wanted is None:
            self.wanted, self.changed_at = min(max(running, low), high), now
        self.samples.append((now, load))
        while self.samples and self.samples[0][0] < now - max(scale_in_after, OUT_WINDOW):
            self.samples.popleft()
        recent = max(n for t, n in self.samples if t >= now - OUT_WINDOW)
        longer = max(n for _, n in self.samples)
        wanted = self.wanted
        if math.ceil(recent / target) > wanted:
            wanted = math.ceil(recent / target)
        elif math.ceil(longer / target) < wanted and now - self.changed_at >= scale_in_after:
            wanted = math.ceil(longer / target)
        wanted = min(max(wanted, low), high)
        if wanted != self.wanted:
            self.wanted, self.changed_at = wanted, now
        return wanted
