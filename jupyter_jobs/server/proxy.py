"""A job's endpoints through the Jupyter server: `/jupyter-jobs/jobs/{id}/endpoints/{name}/...`.

HTTP (every method, streamed both ways, with backpressure) and websockets on the same route,
behind Jupyter's authentication and the `jupyter_jobs` authorizer check like every other
handler. The upstream is aiohttp's pooled client (keep-alive connections to the job): a
proxied request costs one pass through this handler, not a new connection. The target comes
from the job's record only (endpoints.py); the request's path is checked, never trusted.

Not jupyter-server-proxy: it buffers request bodies (and responses, except event streams),
forwards the user's Jupyter cookie and token to the proxied process, and asks no authorizer.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from http.cookies import SimpleCookie
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import aiohttp
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket
from tornado.iostream import StreamClosedError
from yarl import URL

from ..endpoints.endpoints import endpoint_path, netloc
from .handlers import JobsHandlerMixin

#: headers that describe one connection, not the message (RFC 9110 7.6.1), never passed on
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


@web.stream_request_body
class EndpointHandler(JobsHandlerMixin, ExtensionHandlerMixin, websocket.WebSocketHandler, JupyterHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")  # type: ignore[assignment]
    _kernel_secret_in_url = True  # job.endpoint(name) in a kernel: a URL any HTTP client can GET

    _up_body: Optional[asyncio.Queue[bytes]] = None
    _up_task: Optional[asyncio.Task] = None
    _up_ws: Any = None
    _up_relay: Optional[asyncio.Task] = None

    # -- who may, and where to --------------------------------------------------------------
    def check_xsrf_cookie(self) -> None:
        """Jupyter's `_xsrf` is not something a proxied app can send; it gets a same-origin check
        instead: a request authenticated by cookie must come from a page of this server."""
        if not hasattr(self, "_jupyter_current_user") or self.token_authenticated or self._kernel_client:
            return
        headers = self.request.headers
        same = self.check_origin() if "Origin" in headers else "Referer" in headers and self.check_referer()
        if not same:
            raise web.HTTPError(403, "a cross-site request to a job endpoint (no Origin or Referer of this server)")

    def set_secure_cookie(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """A client sending Jupyter's token in a header sends it every time: no login cookie
        for it (signing one is a third of what a proxied request costs)."""
        if name == self.cookie_name and self.request.headers.get("Authorization"):
            return
        super().set_secure_cookie(name, value, *args, **kwargs)

    def _log(self) -> None:
        """Failures are logged as everywhere; each proxied success is not (a page load is tens
        of requests, and a debug record costs a tenth of a proxied request)."""
        if self.get_status() >= 400:
            super()._log()

    def compute_etag(self) -> None:
        return None  # the app's own ETag, or none

    def check_origin(self, origin: str = "") -> bool:
        return JupyterHandler.check_origin(self, origin)

    async def prepare(self) -> None:  # type: ignore[override]
        self._is_ws = self.request.headers.get("Upgrade", "").lower() == "websocket"
        await super().prepare()
        if self._finished:  # Jupyter answered already (a redirect to its login page)
            return
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD") and not self._is_ws:
                self.redirect(self.get_login_url() + "?" + urlencode({"next": self.request.uri}))
                return
            raise web.HTTPError(403)
        if not self.authorizer.is_authorized(self, self.current_user, "execute", "jupyter_jobs"):
            raise web.HTTPError(403, "not allowed to reach job endpoints")
        job_id, name, rest = self.path_kwargs["job_id"], self.path_kwargs["name"], self.path_kwargs["rest"] or ""
        self._up_prefix = self.base_url + endpoint_path(job_id, name).rstrip("/")
        raw = self.request.path[len(self._up_prefix):] if self.request.path.startswith(self._up_prefix) else rest
        path = _upstream_path(raw)
        if path is None:
            raise web.HTTPError(400, "this path leaves the endpoint")
        if not raw and self.request.method in ("GET", "HEAD") and not self._is_ws:
            # relative links of the app's pages resolve under the endpoint only with the slash
            self.redirect(self._up_prefix + "/" + (f"?{self.request.query}" if self.request.query else ""))
            return
        host, port = await self.platform.endpoints.target(job_id, name)
        query = urlencode([(k, v) for k, v in parse_qsl(self.request.query, keep_blank_values=True) if k != "token"])
        self._up_target = netloc(host, port)
        self._up_url = f"http://{self._up_target}{path}" + (f"?{query}" if query else "")
        if self._is_ws:
            return
        self.request.connection.set_max_body_size(self.settings.get("jupyter_jobs_endpoint_max_body", 1 << 40))
        if self.request.method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS") and self._has_body():
            self._up_body = asyncio.Queue(maxsize=4)
        self._up_task = asyncio.ensure_future(self._send())

    def _has_body(self) -> bool:
        headers = self.request.headers
        return headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers

    def _up_headers(self) -> dict[str, str]:
        """The client's headers minus Jupyter's credentials and the hop-by-hop ones."""
        named = {v.strip().lower() for v in self.request.headers.get("Connection", "").split(",")}
        # Origin: Jupyter checked it; the app would compare it with its own address and refuse
        drop = HOP_BY_HOP | named | {"host", "cookie", "origin", "x-xsrftoken", "x-jupyter-jobs-origin"}
        if self._is_ws:
            drop |= WS_HANDSHAKE
        out: dict[str, str] = {}
        for key, value in self.request.headers.get_all():
            low = key.lower()
            if low in drop or (low == "authorization" and self._jupyter_credential(value)):
                continue
            out[key] = f"{out[key]}, {value}" if key in out else value
        cookies = self._app_cookies()
        if cookies:
            out["Cookie"] = cookies
        out["X-Forwarded-Proto"] = self.request.protocol
        out["X-Forwarded-Host"] = self.request.host
        out["X-Forwarded-Prefix"] = self._up_prefix
        return out

    def _jupyter_credential(self, value: str) -> bool:
        scheme, _, sent = value.strip().partition(" ")
        secrets = [self.settings.get("jupyter_jobs_kernel_token"), getattr(self.identity_provider, "token", None)]
        return scheme.lower() in ("token", "bearer") and any(
            s and hmac.compare_digest(sent.strip().encode(), s.encode()) for s in secrets)

    def _app_cookies(self) -> str:
        """The cookies the app set for itself, without Jupyter's login and `_xsrf` cookies."""
        raw = self.request.headers.get("Cookie")
        if not raw:
            return ""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return ""
        return "; ".join(f"{k}={m.coded_value}" for k, m in jar.items() if not self._jupyters(k))

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
            response = await self._up_task
        except Exception as exc:
            raise web.HTTPError(502, f"job endpoint at {self._up_target} did not answer: "
                                     f"{exc.__class__.__name__}") from None
        try:
            self._respond(response)
            if self.request.method == "HEAD" or response.status in (204, 304):
                return self.finish()
            sending: Optional[asyncio.Future] = None
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
        self.set_status(response.status, response.reason or "Unknown")
        self.clear_header("Content-Type")  # the app's own, or none
        self.clear_header("Server")
        named = {v.strip().lower() for v in response.headers.get("Connection", "").split(",")}
        for key, value in response.headers.items():
            low = key.lower()
            if low in HOP_BY_HOP or low in named:
                continue
            if low == "location":
                value = self._location(value)
            elif low == "set-cookie" and not self._cookie_allowed(value):
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

    def _cookie_allowed(self, value: str) -> bool:
        return not self._jupyters(value.split("=", 1)[0].strip())

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._is_ws:
            await self._open_upstream_ws()
            await websocket.WebSocketHandler.get(self, *args, **kwargs)
        else:
            await self._proxy()

    async def head(self, *args: Any, **kwargs: Any) -> None:
        await self._proxy()

    post = put = patch = delete = options = head  # type: ignore[assignment]

    def on_connection_close(self) -> None:
        if self._is_ws:
            websocket.WebSocketHandler.on_connection_close(self)
        elif self._up_task is not None and not self._up_task.done():
            self._up_task.cancel()

    # -- websockets ---------------------------------------------------------------------------
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


handlers = [
    (r"/jupyter-jobs/jobs/(?P<job_id>[^/]+)/endpoints/(?P<name>[^/]+)(?P<rest>/.*)?", EndpointHandler),
]
