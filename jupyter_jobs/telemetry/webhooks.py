"""Webhooks: a signed JSON POST per event to the URLs the admin configured.

Events: `job.queued`, `job.started`, `job.ended`, `workflow.ended`, `schedule.fired`. Each
webhook has its own in-memory queue and delivery task: deliveries go out in order, a failure
is retried with doubling backoff, and a slow or failing receiver never holds up the service
(a full queue drops its oldest delivery and counts it). The body is signed with the webhook's
secret as GitHub does: `X-Jupyter-Jobs-Signature: sha256=<HMAC-SHA256 of the body>`. Each
webhook's state (delivered, failed, pending, the last error) shows in `GET /backends`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..domain.job import utcnow
from ..domain.replies import WebhookStatus

log = logging.getLogger(__name__)

EVENTS = ("job.queued", "job.started", "job.ended", "workflow.ended", "schedule.fired")


#: query keys whose values are credentials (`?key=`, `token=`, `access_token=`, `sig=`...)
_SECRET_QUERY = re.compile(r"key|token|secret|pass|pwd|sig|auth|cred|session|code", re.I)


def redact_url(url: str) -> str:
    """`url` as it may be shown or logged: scheme, host, port and path kept (which receiver it
    is), the user info and secret-looking query values replaced by `***`, since a receiver's
    URL often carries its credentials and `GET /backends` and the server log are widely read."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = ("***@" if "@" in parts.netloc else "") + (f"[{host}]" if ":" in host else host) + (
            f":{parts.port}" if parts.port is not None else "")
    except ValueError:  # a port that is no number: nothing of it is safe to show
        return "***"
    query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass
class _Hook:
    url: str
    secret: str
    events: frozenset[str]
    pending: deque = field(default_factory=deque)  # (delivery id, event, body)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: Optional[str] = None
    last_delivered_at: Optional[str] = None
    shown: str = field(init=False)  # the URL as status and logs show it

    def __post_init__(self) -> None:
        self.shown = redact_url(self.url)


def check(configs: list[Any]) -> None:
    """Refuse a webhook setting that cannot work, naming what is wrong (at start-up)."""
    for n, config in enumerate(configs):
        where = f"c.JobsApp.webhooks[{n}]"
        if not isinstance(config, dict) or set(config) - {"url", "secret", "events"}:
            raise ValueError(f"{where} must be {{'url': ..., 'secret': ..., 'events': [...]}}")
        url = urlsplit(str(config.get("url", "")))
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"{where}.url must be an http(s) URL, not {redact_url(str(config.get('url')))!r}")
        unknown = set(config.get("events") or []) - set(EVENTS)
        if unknown:
            raise ValueError(f"{where}.events: unknown {sorted(unknown)}; known: {', '.join(EVENTS)}")


class Webhooks:
    def __init__(self, configs: list[dict[str, Any]], *, attempts: int = 10, backoff: float = 1.0,
                 max_pending: int = 10_000, timeout: float = 10.0):
        check(configs)
        self.attempts, self.backoff, self.max_pending, self.timeout = attempts, backoff, max_pending, timeout
        self.hooks = [_Hook(str(c["url"]), str(c.get("secret") or ""), frozenset(c.get("events") or EVENTS))
                      for c in configs]

    def wants(self, event: str) -> bool:
        return any(event in hook.events for hook in self.hooks)

    def emit(self, event: str, subject: dict[str, Any]) -> None:
        """Queue one event for every webhook that takes it; never waits."""
        delivery = secrets.token_hex(8)
        body = json.dumps({"event": event, "delivery": delivery, "at": utcnow().isoformat(), **subject},
                          default=str).encode()
        for hook in self.hooks:
            if event not in hook.events:
                continue
            if len(hook.pending) >= self.max_pending:
                hook.pending.popleft()
                hook.dropped += 1
            hook.pending.append((delivery, event, body))
            hook.wake.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._deliver(hook) for hook in self.hooks))

    async def _deliver(self, hook: _Hook) -> None:
        client = AsyncHTTPClient()
        while True:
            if not hook.pending:
                hook.wake.clear()
                await hook.wake.wait()
                continue
            delivery, event, body = hook.pending[0]
            for attempt in range(self.attempts):
                if await self._post(client, hook, delivery, event, body):
                    hook.delivered += 1
                    hook.last_delivered_at = utcnow().isoformat()
                    break
                await asyncio.sleep(min(300.0, self.backoff * 2 ** attempt))
            else:
                hook.failed += 1
                log.warning("webhook %s: gave up on %s %s after %d attempts (%s)", hook.shown, event, delivery,
                            self.attempts, hook.last_error)
            if hook.pending and hook.pending[0][0] == delivery:
                hook.pending.popleft()

    async def _post(self, client: AsyncHTTPClient, hook: _Hook, delivery: str, event: str, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "X-Jupyter-Jobs-Event": event,
                   "X-Jupyter-Jobs-Delivery": delivery, "User-Agent": "jupyter-jobs-webhook"}
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Jupyter-Jobs-Signature"] = f"sha256={digest}"
        try:
            reply = await client.fetch(HTTPRequest(hook.url, method="POST", body=body, headers=headers,
                                                   request_timeout=self.timeout, follow_redirects=False),
                                       raise_error=False)
        except Exception as exc:  # refused, unreachable, timed out
            hook.last_error = f"{type(exc).__name__}: {exc}".replace(hook.url, hook.shown)
            return False
        if 200 <= reply.code < 300:
            return True
        hook.last_error = f"HTTP {reply.code}" + (f": {reply.error}" if reply.code == 599 and reply.error else "")
        return False

    def status(self) -> list[WebhookStatus]:
        return [WebhookStatus(url=h.shown, events=sorted(h.events), delivered=h.delivered, failed=h.failed,
                              pending=len(h.pending), dropped=h.dropped, last_error=h.last_error,
                              last_delivered_at=h.last_delivered_at) for h in self.hooks]
