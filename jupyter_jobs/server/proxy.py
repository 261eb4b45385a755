"""A job's endpoints through the Jupyter server: `/jupyter-jobs/ep/{key}/...` (or an origin of
their own, `JobsApp.endpoint_url`), and by name, `/jupyter-jobs/jobs/{id}/endpoints/{name}/`.

HTTP (every method, streamed both ways, with backpressure) and websockets on the same route.
The upstream is aiohttp's pooled client (keep-alive connections to the job): a proxied
request costs one pass through this handler, not a new connection. The target comes from the
job's record only (endpoints.py); the request's path is checked, never trusted.

A job's page is the job's code running in the user's browser: it must not act as the user on
this server. The endpoint's key (in its address) is its only credential, handed out by the
authenticated API and by the named address (behind Jupyter's login and authorizer), so the
proxy never needs Jupyter's cookie or token, and strips them from whatever it passes on. Under
this server's own origin, every response carries `Content-Security-Policy: sandbox` (without
`allow-same-origin`): the page runs in an opaque origin of its own, so it cannot read
Jupyter's cookies or storage, register a service worker, or call Jupyter's API with the user's
session (cross-origin: no cookie, and Jupyter refuses `Origin: null`). Its own calls to its own
address are cross-origin too: the proxy answers them with CORS for `Origin: null`. With
`endpoint_url`, each endpoint has an origin of its own instead, and needs no sandbox.

Not jupyter-server-proxy: it buffers request bodies (and responses, except event streams),
forwards the user's Jupyter cookie and token to the proxied process, and asks no authorizer.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import aiohttp
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket
from tornado.iostream import StreamClosedError
from yarl import URL

from ..domain.errors import JobsError
from ..endpoints.endpoints import key_path, netloc
from .handlers import JobsHandlerMixin
from .sandbox import ORIGIN_WIDE, SANDBOX, SHIM_WINDOW, own_cookie, split_cookies, with_shim

#: headers that describe one connection, not the message (RFC 9110 7.6.1), never passed on
#: methods a request of which may be sent again to another replica when the first did not answer
IDEMPOTENT = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade"}
#: the websocket handshake's own headers, which the upstream handshake makes afresh
WS_HANDSHAKE = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept",
                "sec-websocket-protocol"}
_CHUNK = 1 << 20
_BAD_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")
_EOF = b""


def _upstream_path(raw: str) -> Optional[str]:
    """The path to ask the job for, as the client encoded it; None for one that tries to climb
    out or change host (`..`, `%2e%2e`, backslashes, `//host`, control characters)."""
    decoded = unquote(unquote(raw))  # twice: %252e%252e must not become .. at the other end
    if _BAD_SEGMENT.search(decoded) or "\\" in decoded or decoded.startswith("//") or any(
            ord(c) < 0x20 for c in decoded):
        return None
    return raw or "/"


def _without_token(query: str) -> str:
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"])


class EndpointEntry(JobsHandlerMixin, ExtensionHandlerMixin, JupyterHandler):
    """The endpoint by name, behind Jupyter's login and the `jupyter_jobs` authorizer: it sends
    the caller on (307, any method) to the endpoint's own address, which holds its key."""

    async def _key(self, owner: str, name: str) -> str:
        await self.platform.endpoints.target(owner, name)  # a 404 naming why, for one not running
        return self.platform.endpoints.key(owner, name)

    @web.authenticated  # a browser that is not logged in is sent to the login page first
    @authorized("execute")
    async def _entry(self, owner: str, name: str, rest: Optional[str] = None) -> None:
        endpoints = self.platform.endpoints
        key = await self._key(owner, name)
        base = endpoints.url.format(key=key).rstrip("/") if endpoints.url else self.base_url + key_path(key)[:-1]
        query = _without_token(self.request.query)
        self.redirect(base + (rest or "/") + (f"?{query}" if query else ""), status=307)

    get = head = post = put = patch = delete = options = _entry  # type: ignore[assignment]


class DeploymentEntry(EndpointEntry):
    """A deployment's endpoint by name: sent on to its stable address, as a job's is."""

    async def _key(self, owner: str, name: str) -> str:
        return await self.platform.deployments.endpoint_key(owner, name)  # a 404 naming why


class _WebSocketRelay:
    """The websocket half of the endpoint handler: one upstream websocket per client, messages
    relayed both ways, each side's close passed on to the other."""

    _up_ws: Any = None
    _up_relay: Optional[asyncio.Task] = None

    async def _open_upstream_ws(self) -> None:
        offered = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            self._up_ws = await self.platform.endpoints.session.ws_connect(
                "ws" + self._up_url[4:], headers=self._up_headers(), protocols=offered, max_msg_size=0,
                autoping=True, autoclose=True, compress=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise web.HTTPError(exc.status if 400 <= exc.status < 600 else 502,
                                f"the job endpoint refused the websocket ({exc.status})") from None
        except Exception as exc:
            raise web.HTTPError(502, f"job endpoint at {self._up_target} did not answer: {exc.__class__.__name__}") \
                from None

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        return self._up_ws.protocol if self._up_ws is not None else None

    def get_compression_options(self) -> None:
        return None

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._up_relay = asyncio.ensure_future(self._from_up_task())

    async def _from_up_task(self) -> None:
        import aiohttp

        code, reason = 1000, None
        try:
            async for message in self._up_ws:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    await self.write_message(message.data, binary=message.type == aiohttp.WSMsgType.BINARY)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    code = 1011
                    break
            code = self._up_ws.close_code or code
        except websocket.WebSocketClosedError:
            return
        finally:
            await self._up_ws.close()
        self.close(code if 1000 <= code < 5000 and code not in (1005, 1006, 1015) else 1011, reason)

    async def on_message(self, message: Any) -> None:
        if self._up_ws is None or self._up_ws.closed:
            return
        try:
            if isinstance(message, bytes):
                await self._up_ws.send_bytes(message)
            else:
                await self._up_ws.send_str(message)
        except ConnectionError:
            self.close(1011)

    def on_close(self) -> None:
        if self._up_ws is not None and not self._up_ws.closed:
            code = self.close_code if self.close_code and 1000 <= self.close_code < 5000 else 1000
            self._up_closing = asyncio.ensure_future(self._up_ws.close(code=code))


@web.stream_request_body
class EndpointHandler(_WebSocketRelay, JobsHandlerMixin, ExtensionHandlerMixin, websocket.WebSocketHandler,
                      JupyterHandler):
    """An endpoint at its own address: `/jupyter-jobs/ep/{key}/...` here, or `/...` on the
    endpoint's own origin (`host`: the pattern its Host matches, with the key as a group)."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")  # type: ignore[assignment]

    _up_body: Optional[asyncio.Queue[bytes]] = None
    _up_task: Optional[asyncio.Task] = None
    _preflight = False
    _shim = False
    _own_origin: Optional[re.Pattern] = None
    _lease: Any = None  # a deployment's replica answering this request (released when it is over)

    def initialize(self, *args: Any, host: Optional[re.Pattern] = None, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._own_origin = host
        if host is not None:
            self.clear_header("Content-Security-Policy")  # set before this was known: no sandbox needed

    # -- who may, and where to --------------------------------------------------------------
    def check_xsrf_cookie(self) -> None:
        """No cookie authenticates a request here (the key in the address does): nothing to forge."""

    def check_origin(self, origin: str = "") -> bool:
        return True  # the key authenticates a websocket too, whatever page opened it

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.clear_header("Content-Security-Policy")  # Jupyter's own is for its pages
        if self._own_origin is None:
            self.set_header("Content-Security-Policy", SANDBOX)  # also on this proxy's own errors

    def _log(self) -> None:
        """Failures are logged as everywhere; each proxied success is not (a page load is tens
        of requests, and a debug record costs a tenth of a proxied request)."""
        if self.get_status() >= 400:
            super()._log()

    def compute_etag(self) -> None:
        return None  # the app's own ETag, or none

    async def prepare(self) -> None:  # type: ignore[override]
        """Not Jupyter's login: the key in the address says which endpoint, and that the caller
        was handed it."""
        self.current_user = self._jupyter_current_user = None
        await self.service.start()
        method, headers = self.request.method, self.request.headers
        self._is_ws = method == "GET" and headers.get("Upgrade", "").lower() == "websocket"
        if self._own_origin is None:
            key = self.path_kwargs["key"]
            self._up_prefix = self.base_url + key_path(key)[:-1]
            raw = self.path_kwargs["rest"] or ""
            if headers.get("Service-Worker") == "script":  # not over this server's paths, whatever the job says
                raise web.HTTPError(403, "job endpoints under the Jupyter server's origin cannot install "
                                         "service workers (JobsApp.endpoint_url gives them an origin of their own)")
        else:
            match = self._own_origin.fullmatch(self.request.host_name)
            key, self._up_prefix, raw = match["key"] if match else "", "", self.request.path
        self._key = key
        if self.platform.deployments.routes(key):  # a deployment's endpoint: one of its ready replicas
            self._lease = await self.platform.deployments.lease(key)
            job_id, name = self._lease.job_id, self._lease.endpoint
        else:
            job_id, name = self.platform.endpoints.find(key)
        path = _upstream_path(raw)
        if path is None:
            raise web.HTTPError(400, "this path leaves the endpoint")
        if not raw and method in ("GET", "HEAD") and not self._is_ws:
            # relative links of the app's pages resolve under the endpoint only with the slash
            self.redirect(self._up_prefix + "/" + (f"?{self.request.query}" if self.request.query else ""))
            return
        if self._cross_origin_call():
            self.set_header("Access-Control-Allow-Origin", "*")
            self.set_header("Access-Control-Expose-Headers", "*")
            if method == "OPTIONS" and "Access-Control-Request-Method" in headers:
                self._preflight = True  # the browser asks whether the page may call its own app
                return
        self._up_path = path
        await self._aim(job_id, name)
        if self._is_ws:
            return
        self.request.connection.set_max_body_size(self.settings.get("jupyter_jobs_endpoint_max_body", 1 << 40))
        if method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS") and self._has_body():
            self._up_body = asyncio.Queue(maxsize=4)
        self._up_task = asyncio.ensure_future(self._send())

    async def _aim(self, job_id: str, name: str) -> None:
        host, port = await self.platform.endpoints.target(job_id, name)
        query = _without_token(self.request.query)
        self._up_target = netloc(host, port)
        self._up_url = f"http://{self._up_target}{self._up_path}" + (f"?{query}" if query else "")

    async def _again(self, exc: Exception) -> Any:
        """A deployment's request that failed before any answer, sent once to another ready
        replica when it may be repeated (an idempotent method without a body)."""
        lease = self._lease
        if lease is None or self.request.method not in IDEMPOTENT or self._up_body is not None:
            raise exc
        lease.release(None)
        self._lease = await self.platform.deployments.lease(self._key, exclude=frozenset([lease.job_id]))
        await self._aim(self._lease.job_id, self._lease.endpoint)
        return await self._send()

    def _cross_origin_call(self) -> bool:
        """A sandboxed page's call to its own address: its origin is opaque (`null`)."""
        return self._own_origin is None and self.request.headers.get("Origin") == "null"

    def _answer_preflight(self) -> None:
        headers = self.request.headers
        self.set_header("Access-Control-Allow-Methods", headers.get("Access-Control-Request-Method", ""))
        if "Access-Control-Request-Headers" in headers:
            self.set_header("Access-Control-Allow-Headers", headers["Access-Control-Request-Headers"])
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def _has_body(self) -> bool:
        headers = self.request.headers
        return headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers

    def _up_headers(self) -> dict[str, str]:
        """The client's headers minus Jupyter's credentials (wherever they are) and the hop-by-hop ones."""
        named = {v.strip().lower() for v in self.request.headers.get("Connection", "").split(",")}
        # Origin: the app would compare it with its own address (or `null`) and refuse
        drop = HOP_BY_HOP | named | {"host", "cookie", "origin", "x-xsrftoken", "x-jupyter-jobs-origin"}
        if self._is_ws:
            drop |= WS_HANDSHAKE
        secrets = self._secrets()
        out: dict[str, str] = {}
        for key, value in self.request.headers.get_all():
            low = key.lower()
            if low in drop or any(s in value for s in secrets):
                continue
            if low == "referer" and not (value := self._referer(value)):
                continue
            if low == "accept-encoding" and self._own_origin is None and self.request.headers.get(
                    "Sec-Fetch-Dest") in ("document", "iframe", "frame"):
                continue  # a page comes plain, so the shim can go in
            out[key] = f"{out[key]}, {value}" if key in out else value
        cookies = "; ".join(f"{k}={v}" for k, v in self._cookies() if not self._jupyters(k)
                            and not any(s in v for s in secrets))
        if cookies:
            out["Cookie"] = cookies
        out["X-Forwarded-Proto"] = self.request.protocol
        out["X-Forwarded-Host"] = self.request.host
        out["X-Forwarded-Prefix"] = self._up_prefix
        return out

    def _cookies(self) -> list[tuple[str, str]]:
        return split_cookies(self.request.headers.get_list("Cookie"))

    def _secrets(self) -> list[str]:
        """What would let the job act as the user: Jupyter's token, the kernels' secret, and
        the values of Jupyter's cookies this request carries. A header holding one anywhere
        (`Authorization: token<TAB>...`, a copied URL) is not passed on."""
        found = [self.settings.get("jupyter_jobs_kernel_token"), getattr(self.identity_provider, "token", None)]
        found += [v.strip('"') for k, v in self._cookies() if self._jupyters(k)]
        return [s for s in found if s and len(s) >= 8]

    def _referer(self, value: str) -> str:
        """The referring page if it is one of the endpoint's own (without a `token`); else nothing:
        a Jupyter page's URL may hold Jupyter's token."""
        parts = urlsplit(value)
        if parts.netloc != self.request.host or not (parts.path + "/").startswith(self._up_prefix + "/"):
            return ""
        query = _without_token(parts.query)
        return parts._replace(query=query, fragment="").geturl()

    def _jupyters(self, cookie: str) -> bool:
        """Jupyter's login cookie (named after the host it was set for) and its `_xsrf`."""
        return cookie in (self.cookie_name, "_xsrf") or cookie.startswith("username-")

    # -- HTTP -------------------------------------------------------------------------------
    async def data_received(self, chunk: bytes) -> None:
        if self._up_body is not None and chunk:
            await self._up_body.put(chunk)  # a full queue holds the client back

    async def _chunks(self) -> Any:
        assert self._up_body is not None
        while (chunk := await self._up_body.get()) != _EOF:
            yield chunk

    async def _send(self) -> Any:
        headers = self._up_headers()
        data = None
        if self._up_body is not None:
            data = self._chunks()
        else:
            headers.pop("Content-Length", None)
        return await self.platform.endpoints.session.request(
            self.request.method, URL(self._up_url, encoded=True), headers=headers, data=data, allow_redirects=False,
            skip_auto_headers=("Content-Type",))

    async def _proxy(self) -> None:
        assert self._up_task is not None
        if self._up_body is not None:
            await self._up_body.put(_EOF)
        try:
            try:
                response = await self._up_task
            except Exception as exc:
                response = await self._again(exc)
        except JobsError:
            raise
        except Exception as exc:
            raise web.HTTPError(502, f"job endpoint at {self._up_target} did not answer: "
                                     f"{exc.__class__.__name__}") from None
        try:
            self._respond(response)
            self.no_delay()  # the app's chunks (a stream of events, of tokens) go out as they come
            if self.request.method == "HEAD" or response.status in (204, 304):
                return self.finish()
            sending: Optional[asyncio.Future] = None
            if self._shim:  # the page's first bytes, with the shim in, before any of its scripts
                start = b""
                while len(start) < SHIM_WINDOW and (data := await response.content.readany()):
                    start += data
                self.write(with_shim(start))
                sending = self.flush()
            while data := await response.content.readany():
                if sending is not None:
                    await sending  # at most one chunk in flight: a slow client holds the job back
                self.write(data)
                sending = self.flush()  # read the next chunk while this one is sent
            if sending is not None:
                await sending
            self.finish()
        except StreamClosedError:
            pass
        finally:
            response.release()

    def _respond(self, response: Any) -> None:
        self._shim = self._own_origin is None and response.content_type == "text/html" and \
            response.headers.get("Content-Encoding", "identity") == "identity"
        self.set_status(response.status, response.reason or "Unknown")
        self.clear_header("Content-Type")  # the app's own, or none
        self.clear_header("Server")
        named = {v.strip().lower() for v in response.headers.get("Connection", "").split(",")}
        for key, value in response.headers.items():
            low = key.lower()
            if low in HOP_BY_HOP or low in named or low == "clear-site-data" or (
                    self._own_origin is None and low in ORIGIN_WIDE) or (self._shim and low == "content-length"):
                continue  # Clear-Site-Data: "cookies" wipes the whole site's, Jupyter's among them
            if low == "location":
                value = self._location(value)
            elif low == "set-cookie" and (value := own_cookie(value, self._up_prefix, self._jupyters)) is None:
                continue
            self.add_header(key, value)

    def _location(self, value: str) -> str:
        """A redirect within the app stays within the endpoint; one elsewhere is passed on
        untouched (the browser follows it; this server never does)."""
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc and value.startswith("/"):
            return self._up_prefix + value
        if parts.scheme in ("http", "https") and parts.netloc == self._up_target:
            return self._up_prefix + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return value

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._is_ws:
            await self._open_upstream_ws()
            try:
                await websocket.WebSocketHandler.get(self, *args, **kwargs)
            finally:
                if self.get_status() != 101:  # Tornado refused the handshake: the job's side goes too
                    await self._up_ws.close()
        else:
            await self.head()

    async def head(self, *args: Any, **kwargs: Any) -> None:
        if self._preflight:
            self._answer_preflight()
        else:
            await self._proxy()

    post = put = patch = delete = options = head  # type: ignore[assignment]

    def on_finish(self) -> None:
        if self._lease is not None:
            self._lease.release(self.get_status())

    def on_connection_close(self) -> None:
        if self._lease is not None:
            self._lease.release(None)
        if self._is_ws:
            websocket.WebSocketHandler.on_connection_close(self)
        elif self._up_task is not None and not self._up_task.done():
            self._up_task.cancel()

handlers = [
    (r"/jupyter-jobs/ep/(?P<key>[^/]+)(?P<rest>/.*)?", EndpointHandler),
    (r"/jupyter-jobs/jobs/(?P<owner>[^/]+)/endpoints/(?P<name>[^/]+)(?P<rest>/.*)?", EndpointEntry),
    (r"/jupyter-jobs/deployments/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?", DeploymentEntry),
]


def own_origins(url: str) -> re.Pattern:
    """The Host pattern of `JobsApp.endpoint_url` (`{key}.<host>`), with the key as a group."""
    host = urlsplit(url).hostname or ""
    return re.compile(re.escape(host).replace(re.escape("{key}"), r"(?P<key>[a-z2-7]{32})"))
