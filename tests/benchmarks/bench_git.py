"""Git workspaces. A repository of 100 MB (incompressible files) at a new commit, served by
`git daemon` on 127.0.0.1: submitting a job of it (clone into the mirror, write out the tree,
snapshot it, until the job is recorded) against `git clone --depth 1` of the same repository,
measured in the same run (target <= 1.2x); then the same commit again (target <= 5 % of the
first). Each run starts from an empty data folder and a new commit."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import parser, server, table

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=GIT_ENV).stdout


def make_repo(base: Path, megabytes: int, files: int) -> Path:
    work = base / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    each = megabytes * (1 << 20) // files
    for i in range(files):
        sub = work / f"d{i % 20}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(each))
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "data", cwd=work)
    git("clone", "-q", "--bare", str(work), str(base / "repo.git"), cwd=base)
    return base / "repo.git"


def new_commit(bare: Path, n: int) -> None:
    """Move main on by one small commit (a new commit, the same big tree otherwise)."""
    with tempfile.TemporaryDirectory() as tmp:
        git("clone", "-q", "--depth", "1", f"file://{bare}", tmp, cwd=bare)
        (Path(tmp) / "round.txt").write_text(str(n))
        git("add", ".", cwd=Path(tmp))
        git("commit", "-q", "-m", f"round {n}", cwd=Path(tmp))
        git("push", "-q", "origin", "main", cwd=Path(tmp))


def stats(values: list[float]) -> list[str]:
    return [f"{min(values):.2f}", f"{statistics.median(values):.2f}", f"{max(values):.2f}"]


def main() -> None:
    args = parser(__doc__).parse_args()
    megabytes, files, runs = (10, 50, 2) if args.quick else (100, 400, 3)
    with tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
        base = Path(tmp)
        bare = make_repo(base, megabytes, files)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                                   "--listen=127.0.0.1", f"--port={port}", str(base)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"git://127.0.0.1:{port}/repo.git"
        try:
            while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode:
                time.sleep(0.1)
            clones, firsts, agains = [], [], []
            for n in range(runs):
                new_commit(bare, n)
                target = base / f"clone{n}"
                start = time.perf_counter()
                git("clone", "-q", "--depth", "1", url, str(target), cwd=base)
                clones.append(time.perf_counter() - start)
                with server() as srv:  # an empty data folder: no mirror, no tree, no snapshot yet
                    spec = {"command": "true", "workspace": {"git": url, "ref": "main"}}
                    start = time.perf_counter()
                    srv.request("POST", "/jupyter-jobs/jobs", spec)
                    firsts.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    srv.request("POST", "/jupyter-jobs/jobs", spec)
                    agains.append(time.perf_counter() - start)
        finally:
            daemon.terminate()
        ratio = statistics.median(firsts) / statistics.median(clones)
        share = statistics.median(agains) / statistics.median(firsts)
        table(f"A {megabytes} MB repository at a new commit ({runs} runs)",
              ["path", "min s", "median s", "max s", "ratio (medians)", "target", "met"],
              [["git clone --depth 1 (baseline)", *stats(clones), "1.00x", "", ""],
               ["POST a job of it (first time: mirror, tree, snapshot)", *stats(firsts), f"{ratio:.2f}x",
                "<= 1.2x", "yes" if ratio <= 1.2 else "NO"],
               ["POST a job of the same commit again", *stats(agains), f"{share:.1%} of the first", "<= 5 %",
                "yes" if share <= 0.05 else "NO"]])


if __name__ == "__main__":
    main()
