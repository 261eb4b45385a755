"""The secret a server gives its kernels opens that server's job endpoints from a URL (what
`job.endpoint()` hands a kernel), and is never passed on to the job (in-process server)."""

from __future__ import annotations

import asyncio

from tornado.httpclient import AsyncHTTPClient


async def test_the_kernel_secret_in_the_url_reaches_an_endpoint(api, workspace, jp_serverapp, jp_http_port,
                                                              jp_base_url):
    secret = jp_serverapp.web_app.settings["jupyter_jobs_kernel_token"]
    job = await api.submit({"command": "exec python3 -m http.server $PORT_WEB --bind 127.0.0.1",
                            "workspace": "proj", "expose": [{"port": 8000, "name": "web"}]})
    for _ in range(300):
        if (await api.job(job["id"]))["endpoints"][0]["state"] == "ready":
            break
        await asyncio.sleep(0.1)
    server = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"  # under a base URL, as on JupyterHub
    base = f"{server}jupyter-jobs/jobs/{job['id']}/endpoints/web/hello.py"
    client = AsyncHTTPClient()
    ok = await client.fetch(f"{base}?token={secret}", raise_error=False, follow_redirects=False)
    assert ok.code == 200 and ok.body == (workspace / "hello.py").read_bytes()
    wrong = await client.fetch(f"{base}?token=not-{secret}", raise_error=False, follow_redirects=False)
    assert wrong.code == 302  # to the login page: not a credential
    # the same secret on the REST API only counts in the Authorization header
    listing = await client.fetch(f"{server}jupyter-jobs/jobs?token={secret}",
                                 raise_error=False, follow_redirects=False)
    assert listing.code == 403
    await api.call("POST", "jobs", job["id"], "cancel")
