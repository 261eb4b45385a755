"""Git workspaces against real git: a repository made in the test, served by `git daemon` on
127.0.0.1 and by path; refs resolved to commits at submit time and recorded; the same commit
twice reuses its snapshot; a folder of the repository; reruns at the same commit; errors named
by field with git's own message (an unknown ref, an unreachable repository, a login refused
by a server that asks for one: never a hang); --git on the magic's and the CLI's options."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import free_port, log_text


async def run(api, workspace: dict, command: str = "python3 train.py") -> tuple[dict, str]:
    job = await api.submit({"command": command, "workspace": workspace})
    done = await api.wait(job["id"], timeout=60)
    return job, log_text(await api.logs(job["id"])) if done["status"] == "succeeded" else done["message"]


async def test_a_ref_is_resolved_recorded_and_run(api, repo):
    job, out = await run(api, {"git": repo["url"], "ref": "v1"})
    assert out == "one\n" and job["spec"]["git"]["commit"] == repo["v1"] and job["project"] == "repo"
    job, out = await run(api, {"git": repo["url"], "ref": "main"})
    assert out == "two\n" and job["spec"]["git"]["commit"] == repo["main"]
    job, out = await run(api, {"git": repo["path"]})  # by path, HEAD
    assert out == "two\n"
    job, out = await run(api, {"git": repo["url"], "ref": "v1", "subdir": "sub"}, "cat inner.txt")
    assert out == "inside\n"


async def test_the_same_commit_again_reuses_its_snapshot_and_a_rerun_keeps_the_commit(api, repo, tmp_path):
    first = await api.submit({"command": "true", "workspace": {"git": repo["url"], "ref": repo["v1"]}})
    second = await api.submit({"command": "true", "workspace": {"git": repo["url"], "ref": "v1"}})
    one, two = [await api.call("GET", "jobs", j["id"]) for j in (first, second)]
    assert one["spec"]["git"]["commit"] == two["spec"]["git"]["commit"] == repo["v1"]
    assert one["snapshot"] == two["snapshot"]  # the same files: one snapshot, nothing copied again
    again = await api.call("POST", "jobs", second["id"], "rerun", expect=201)
    assert again["spec"]["git"]["commit"] == repo["v1"] and again["spec"]["git"]["ref"] == "v1"


@pytest.fixture
def asks_for_a_login():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="repos"')
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/private.git"
    server.shutdown()


async def test_errors_name_the_field_with_gits_message(api, repo, asks_for_a_login):
    started = time.monotonic()
    unknown = await api.submit({"command": "true", "workspace": {"git": repo["url"], "ref": "nope"}}, expect=400)
    assert unknown["errors"][0]["field"] == "git.ref" and "no branch, tag or commit 'nope'" in unknown["message"]
    gone = await api.submit({"command": "true", "workspace": {"git": f"git://127.0.0.1:{free_port()}/x.git"}},
                            expect=400)
    assert gone["errors"][0]["field"] == "git.url" and "unable to connect" in gone["message"].lower()
    login = await api.submit({"command": "true", "workspace": {"git": asks_for_a_login}}, expect=400)
    assert login["errors"][0]["field"] == "git.url" and "prompts disabled" in login["message"]
    folder = await api.submit({"command": "true", "workspace": {"git": repo["url"], "subdir": "nowhere"}},
                              expect=400)
    assert folder["errors"][0]["field"] == "git.subdir"
    assert time.monotonic() - started < 30  # no prompt waited for


def test_the_options_say_git_url_at_ref(tmp_path, monkeypatch):
    from jupyter_jobs.kernel.specs import build_spec, git_ref

    monkeypatch.chdir(tmp_path)
    assert git_ref("https://h/r.git@feature/x") == ("https://h/r.git", "feature/x")
    assert git_ref("git@github.com:org/r.git") == ("git@github.com:org/r.git", "")
    assert git_ref("git@github.com:org/r.git@v2") == ("git@github.com:org/r.git", "v2")
    assert build_spec({"git": "https://h/r.git@v1"}, tmp_path)["workspace"] == {"git": "https://h/r.git", "ref": "v1"}
