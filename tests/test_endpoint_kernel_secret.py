"""A kernel reaches its jobs' endpoints at their keyed addresses (what `job.endpoint()` hands
it): no credential of the server is in that URL, and the kernels' secret counts nowhere in a
URL; in the Authorization header it opens the named address like a login (in-process server)."""

from __future__ import annotations

import asyncio

from tornado.httpclient import AsyncHTTPClient

from jupyter_jobs.kernel.client import RestService


async def test_the_kernels_endpoint_url_holds_the_key_and_no_secret(api, workspace, jp_serverapp, jp_http_port,
                                                                   jp_base_url):
    secret = jp_serverapp.web_app.settings["jupyter_jobs_kernel_token"]
    job = await api.submit({"command": "exec python3 -m http.server $PORT_WEB --bind 127.0.0.1",
                            "workspace": "proj", "expose": [{"port": 8000, "name": "web"}]})
    for _ in range(300):
        if (job := await api.job(job["id"]))["endpoints"][0]["state"] == "ready":
            break
        await asyncio.sleep(0.1)
    server = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"  # under a base URL, as on JupyterHub
    kernel = RestService(server, secret)
    url = kernel.endpoint_url(job, "web", "hello.py")
    assert url == f"{server}{job['endpoints'][0]['path']}hello.py" and secret not in url
    client = AsyncHTTPClient()
    ok = await client.fetch(url, raise_error=False, follow_redirects=False)
    assert ok.code == 200 and ok.body == (workspace / "hello.py").read_bytes()
    named = f"{server}jupyter-jobs/jobs/{job['id']}/endpoints/web/hello.py"
    in_url = await client.fetch(f"{named}?token={secret}", raise_error=False, follow_redirects=False)
    assert in_url.code == 302 and "/login" in in_url.headers["Location"]  # not a credential in a URL
    in_header = await client.fetch(named, headers={"Authorization": f"token {secret}"}, raise_error=False,
                                   follow_redirects=False)
    keyed = f"{jp_base_url}{job['endpoints'][0]['path']}hello.py"
    assert in_header.code == 307 and in_header.headers["Location"] == keyed
    listing = await client.fetch(f"{server}jupyter-jobs/jobs?token={secret}", raise_error=False,
                                 follow_redirects=False)
    assert listing.code == 403  # on the REST API too, the secret only counts in the header
    await api.call("POST", "jobs", job["id"], "cancel")
