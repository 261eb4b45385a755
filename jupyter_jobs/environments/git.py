"""Workspaces from git: a repository at a branch, tag or commit, as the job's files.

Each repository gets a bare mirror under the data folder, cloned once and fetched
incrementally after; a ref is resolved to a commit at submit time (recorded on the job), and
the commit's tree (or a folder of it) is written out once per commit into a folder that the
snapshot store then records. The same commit again finds that folder unchanged: the snapshot
store's stat cache makes it a lookup, nothing copied. Every git command has a time limit and
never prompts, so a wrong URL, an unknown ref or a refused login is a clear error, not a hang.
Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from typing import Optional

_SHA = re.compile(r"[0-9a-f]{40}")
#: never ask for a password, never run a command through a URL
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes", "GIT_CONFIG_NOSYSTEM": "1"}
_SAFE = ["-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "core.symlinks=true"]


class GitError(ValueError):
    """A repository or ref that cannot be used; `field` says which part of the spec."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class GitSources:
    def __init__(self, root: Path, timeout: float = 120.0):
        self.root, self.timeout = Path(root), timeout
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def _git(self, *args: str, cwd: Optional[Path] = None, field: str = "git.url") -> str:
        try:
            done = subprocess.run(["git", *_SAFE, *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=self.timeout, env={**os.environ, **_ENV}, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GitError(field, f"git did not answer within {self.timeout:g} s ({args[0]})") from None
        except FileNotFoundError:
            raise GitError(field, "git is not installed on the server") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise GitError(field, "; ".join(lines[-2:]) or f"git {args[0]} exited with {done.returncode}")
        return done.stdout

    def _mirror(self, url: str) -> Path:
        """The repository's bare mirror: cloned the first time, fetched (only what is new) after."""
        mirror = self.root / "mirrors" / (hashlib.sha1(url.encode()).hexdigest()[:20] + ".git")
        if not (mirror / "HEAD").exists():
            partial = mirror.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--mirror", "--quiet", "--", url, str(partial))
            partial.rename(mirror)
        return mirror

    def checkout(self, url: str, ref: str, subdir: str = "", commit: Optional[str] = None) -> tuple[str, Path]:
        """(commit, folder): the ref's commit now (or `commit`, when the job already names one)
        and a folder holding its tree (or `subdir` of it)."""
        if url.startswith("-"):
            raise GitError("git.url", "not a repository URL")
        with self._locks[url]:
            mirror = self._mirror(url)
            wanted = commit or ref
            if not (_SHA.fullmatch(wanted) and self._has(mirror, wanted)):
                self._git("fetch", "--prune", "--quiet", "origin", cwd=mirror)  # only what is new
            try:
                found = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{wanted}^{{commit}}",
                                  cwd=mirror, field="git.ref").strip()
            except GitError:
                raise GitError("git.ref", f"no branch, tag or commit {wanted!r} in {url}") from None
            return found, self._tree(mirror, found, subdir)

    def _has(self, mirror: Path, sha: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=mirror, capture_output=True,
                              env={**os.environ, **_ENV}).returncode == 0

    def _tree(self, mirror: Path, commit: str, subdir: str) -> Path:
        """The commit's files, written out once (and kept: the next job of it reads this folder)."""
        name = commit + (f"-{hashlib.sha1(subdir.encode()).hexdigest()[:10]}" if subdir else "")
        folder = self.root / "trees" / name
        if folder.is_dir():
            return folder
        target = f"{commit}:{subdir}" if subdir else commit
        if subdir and self._kind(mirror, target) != "tree":
            raise GitError("git.subdir", f"no folder {subdir!r} at commit {commit[:12]}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=name + ".", dir=folder.parent))
        try:
            with subprocess.Popen(["git", *_SAFE, "archive", "--format=tar", target], cwd=mirror,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **_ENV}) as proc:
                assert proc.stdout is not None
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    _extract(tar, partial)
                if proc.wait(self.timeout) != 0:
                    raise GitError("git.url", (proc.stderr.read() if proc.stderr else b"").decode().strip()
                                   or "git archive failed")
            os.rename(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            if folder.is_dir():  # another job of the same commit got there first
                return folder
            raise
        return folder

    def _kind(self, mirror: Path, target: str) -> str:
        done = subprocess.run(["git", "cat-file", "-t", target], cwd=mirror, capture_output=True, text=True,
                              env={**os.environ, **_ENV})
        return done.stdout.strip() if done.returncode == 0 else ""


def _extract(tar: tarfile.TarFile, folder: Path) -> None:
    """Everything inside `folder`, no devices: tarfile's `data` filter where this Python has it;
    before it (3.9-3.11 without the 2023 backport), only files and folders inside, links left out."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    for member in tar:
        name = os.path.normpath(member.name)
        if (member.isfile() or member.isdir()) and not name.startswith(("/", "..")):
            tar.extract(member, folder)
