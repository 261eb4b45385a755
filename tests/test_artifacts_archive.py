"""All of a job's artifacts as one zip, streamed by the server (in-process server, real jobs):
10,000 files, a folder of them, never a link or a FIFO the job planted, and a client that goes
away stops the writing."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import zipfile


MAKE = r"""
import os, sys
out = os.environ["JOB_ARTIFACTS_DIR"]
os.makedirs(out + "/many", exist_ok=True)
for i in range(10_000):
    open(f"{out}/many/{i:05}.txt", "w").write(f"artifact {i}\n")
open(out + "/model.bin", "wb").write(bytes(range(256)) * 4096)
os.symlink("/etc/passwd", out + "/passwd")
os.symlink("/etc", out + "/etc")
os.mkfifo(out + "/pipe")
"""


async def test_all_artifacts_come_as_one_zip_without_links(api, workspace):
    job = await api.submit({"command": ["python3", "-c", MAKE], "workspace": "proj"})
    assert (await api.wait(job["id"], timeout=120))["status"] == "succeeded"
    resp = await api.call("GET", "jobs", job["id"], "artifacts.zip")
    assert resp.headers["Content-Type"] == "application/zip"
    assert f'filename="{job["id"]}-artifacts.zip"' in resp.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(resp.body))
    names = archive.namelist()
    assert len(names) == 10_001 and "passwd" not in names and "pipe" not in names
    assert not any(n.startswith("etc/") for n in names), "a link to a folder is not followed"
    assert archive.read("many/00042.txt") == b"artifact 42\n"
    assert archive.read("model.bin") == bytes(range(256)) * 4096
    folder = zipfile.ZipFile(io.BytesIO((await api.call("GET", "jobs", job["id"], "artifacts.zip",
                                                        params={"prefix": "many/0000"})).body))
    assert sorted(folder.namelist()) == [f"many/{i:05}.txt" for i in range(10)]
    missing = await api.call("GET", "jobs", "000000000000", "artifacts.zip", expect=404)
    assert "000000000000" in missing["message"]


async def test_a_client_that_goes_away_stops_the_writer(api, workspace, jp_serverapp, jp_http_port, jp_base_url):
    big = "import os\nopen(os.environ['JOB_ARTIFACTS_DIR'] + '/big.bin', 'wb').truncate(400 << 20)\n"
    job = await api.submit({"command": ["python3", "-c", big], "workspace": "proj"})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write((f"GET {jp_base_url}jupyter-jobs/jobs/{job['id']}/artifacts.zip HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{jp_http_port}\r\nAuthorization: token {jp_serverapp.identity_provider.token}"
                  "\r\n\r\n").encode())
    got = 0
    while got < 4 << 20:  # a few MiB of the 400 MiB, then the client leaves
        got += len(await reader.read(1 << 16))
    writer.close()
    deadline = time.monotonic() + 10
    while any(t.name == "jupyter-jobs-stream" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the zip writer still runs for a client that left"
        await asyncio.sleep(0.1)
