"""Git workspaces against hostile repositories and remotes, with real git: a symlink out of the
repository is left out of the job's files (as a folder workspace leaves it out), never a 500; a
remote that accepts and never answers leaves no git process behind after `git_timeout`; a tree
over the snapshot limit is refused before anything of it is written."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from support import git, log_text

LIMIT = 50 << 20


@pytest.fixture
def jobs_config() -> dict:
    return {"git_timeout": 4.0, "max_snapshot_size": LIMIT}


def commit_all(work: Path) -> str:
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "c", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def outside_links(root: Path) -> list[str]:
    """Every symlink under `root` that resolves outside it."""
    real = os.path.realpath(root)
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not os.path.realpath(path).startswith(real + os.sep):
                found.append(path)
    return found


async def test_symlinks_out_of_the_repository_are_left_out_and_said_so(api, tmp_path, jobs_data):
    work = tmp_path / "links"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "version.txt").write_text("one\n")
    (work / "sub").mkdir()
    os.symlink("/etc/passwd", work / "link")
    os.symlink("../../../../../../../../etc/passwd", work / "sub" / "up")
    os.symlink("version.txt", work / "alias.txt")  # inside: kept
    os.symlink(".", work / "here")
    os.symlink("../here/..", work / "sub" / "sneaky")  # looks inside, resolves out through `here`
    commit_all(work)
    job = await api.submit({"command": "cat alias.txt; ls sub; test -e link || echo no-link",
                            "workspace": {"git": str(work)}})
    notes = "\n".join(job["notes"])
    for name in ("link", "sub/up", "sub/sneaky"):
        assert f"left out of the workspace: {name} (" in notes, notes
    assert "alias.txt" not in notes
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", done["message"]
    assert log_text(await api.logs(job["id"])) == "one\nno-link\n"  # sub/ holds no link either
    assert not outside_links(jobs_data / "git")  # the server keeps no way out either
    again = await api.submit({"command": "true", "workspace": {"git": str(work)}})  # the kept folder: same notes
    assert again["notes"] == job["notes"]


def git_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.fixture
def silent_remote():
    """A TCP server that accepts every connection and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


async def test_a_remote_that_never_answers_leaves_no_git_process_behind(api, silent_remote):
    url = f"http://{silent_remote}/never.git"
    started = time.monotonic()
    try:
        out = await api.submit({"command": "true", "workspace": {"git": url}}, expect=400)
        assert out["errors"][0]["field"] == "git.url" and "did not answer within 4 s" in out["message"]
        assert time.monotonic() - started < 30
        assert git_processes(silent_remote) == []
    finally:
        for pid in git_processes(silent_remote):  # what a failed run left: ours to end
            os.kill(pid, 9)


@pytest.fixture
def big_repo(tmp_path) -> Path:
    """A repository of a few KiB whose tree holds 200 MiB of zeros (one blob, ten paths)."""
    work = tmp_path / "big"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    with open(work / "zeros", "wb") as f:  # 20 MiB of zeros: a few KiB in the repository
        f.truncate(20 << 20)
    blob = git("hash-object", "-w", "zeros", cwd=work)
    (work / "zeros").unlink()
    for i in range(10):  # 200 MiB of tree
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},data/part{i}.bin", cwd=work)
    (work / "train.py").write_text("print('hi')\n")
    git("add", "train.py", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    return work


async def test_a_tree_over_the_limit_is_refused_before_it_is_written(api, big_repo, jobs_data):
    work = big_repo
    out = await api.submit({"command": "true", "workspace": {"git": str(work)}}, expect=400)
    assert out["errors"][0]["field"] == "git.ref", out
    assert "200.0 MiB" in out["message"] and "50.0 MiB" in out["message"] and "data/part" in out["message"]
    trees = jobs_data / "git" / "trees"
    assert not trees.exists() or list(trees.iterdir()) == []  # nothing written, nothing kept
    small = await api.submit({"command": "cat train.py", "workspace": {"git": str(work), "subdir": "data"}},
                             expect=400)  # a folder of it: the same check
    assert small["errors"][0]["field"] == "git.subdir"


def test_a_tree_found_over_the_limit_while_written_is_removed(big_repo, tmp_path, monkeypatch):
    """Past the listing (were it wrong), writing stops at the limit and the partial folder goes."""
    from jupyter_jobs.environments.git import GitError, GitSources

    sources = GitSources(tmp_path / "git", timeout=30, max_bytes=LIMIT)
    monkeypatch.setattr(sources, "_check_size", lambda *args: None)
    with pytest.raises(GitError, match=r"more than 50\.0 MiB") as refused:
        sources.checkout(str(big_repo), "main")
    assert refused.value.field == "git.ref"
    assert list((tmp_path / "git" / "trees").iterdir()) == []
