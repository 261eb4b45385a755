"""What a job's page may do in the user's browser, as pure rules the proxy applies (proxy.py).

Under the Jupyter server's own origin a job's page runs sandboxed (`SANDBOX`, no
`allow-same-origin`): an opaque origin of its own, so nothing it runs shares Jupyter's origin.
Web apps written for a real origin (TensorBoard among them) read `localStorage` at start and
stop when the browser refuses it there, and start workers from their own URLs, which an opaque
origin may not; `SHIM`, put at the top of each HTML page, gives such a page storage and a cookie
jar that live as long as the page, and starts a worker through a script that imports the one
asked for, so the app runs instead of failing. It grants nothing the sandbox withholds.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

#: the page runs as a web app, in an opaque origin (no `allow-same-origin`)
SANDBOX = ("sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads allow-pointer-lock "
           "allow-presentation allow-orientation-lock")
#: response headers a job may not send under this server's origin: they act on the whole origin
#: (a service worker's wider scope, wiping Jupyter's cookies and storage) or are the proxy's own
ORIGIN_WIDE = {"service-worker-allowed", "clear-site-data", "access-control-allow-origin",
               "access-control-allow-credentials", "access-control-allow-methods", "access-control-allow-headers",
               "access-control-expose-headers", "access-control-max-age", "content-security-policy"}
#: where the shim goes: after <head>, else after the doctype, else first (bytes seen before deciding)
SHIM_WINDOW = 4096
_HEAD = re.compile(rb"<head\b[^>]*>|<!doctype[^>]*>", re.IGNORECASE)
SHIM = (b"<script>(function(){function s(){var d=new Map();return{get length(){return d.size},"
        b"key:function(i){return Array.from(d.keys())[i]||null},getItem:function(k){k=String(k);"
        b"return d.has(k)?d.get(k):null},setItem:function(k,v){d.set(String(k),String(v))},"
        b"removeItem:function(k){d.delete(String(k))},clear:function(){d.clear()}}}"
        b"['localStorage','sessionStorage'].forEach(function(n){try{window[n]}catch(e){"
        b"Object.defineProperty(window,n,{value:s(),configurable:true})}});"
        b"try{document.cookie}catch(e){var c={};Object.defineProperty(document,'cookie',{configurable:true,"
        b"get:function(){return Object.keys(c).map(function(k){return k+'='+c[k]}).join('; ')},"
        b"set:function(v){var p=String(v).split(';')[0],i=p.indexOf('=');if(i>0)c[p.slice(0,i).trim()]="
        b"p.slice(i+1).trim()}})}"
        b"var W=window.Worker;if(W){var w=function(u,o){try{return new W(u,o)}catch(e){if(o&&o.type==='module')"
        b"throw e;var b=new Blob(['importScripts('+JSON.stringify(new URL(u,location.href).href)+')'],"
        b"{type:'text/javascript'});return new W(URL.createObjectURL(b),o)}};w.prototype=W.prototype;"
        b"window.Worker=w}})();</script>")


def with_shim(start: bytes) -> bytes:
    """The first bytes of an HTML page with the shim in, before any script of the page runs."""
    heads = list(_HEAD.finditer(start))
    head = next((m for m in heads if m.group().lower().startswith(b"<head")), heads[0] if heads else None)
    at = head.end() if head else 0
    return start[:at] + SHIM + start[at:]


def split_cookies(headers: list[str]) -> list[tuple[str, str]]:
    """Every cookie of every `Cookie` header, split as browsers join them: at `;`, with no
    quoting, so a value the job set with a quote cannot swallow Jupyter's cookies into its own."""
    pairs = []
    for header in headers:
        for part in header.split(";"):
            name, eq, value = part.strip().partition("=")
            if name and eq:
                pairs.append((name.strip(), value.strip()))
    return pairs


def own_cookie(value: str, prefix: str, refused: Callable[[str], bool]) -> Optional[str]:
    """The app's `Set-Cookie` kept to the endpoint: no `Domain` (it would reach the parent
    domain's other hosts), and its `Path` within `prefix` (the endpoint's path under this
    server's origin, empty on an origin of its own), so Jupyter's pages never receive it, nor
    the header bloat of many. None for a name `refused` (Jupyter's own)."""
    pair, *attributes = value.split(";")
    if refused(pair.split("=", 1)[0].strip()):
        return None
    path, kept = "/", []
    for attribute in attributes:
        name, _, setting = attribute.strip().partition("=")
        if name.lower() == "path":
            path = setting.strip() if setting.strip().startswith("/") else "/"
        elif name and name.lower() != "domain":
            kept.append(attribute.strip())
    return "; ".join([pair.strip(), *kept, f"Path={prefix}{path}"])
