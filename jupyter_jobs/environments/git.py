"""Workspaces from git: a repository at a branch, tag or commit, as the job's files.

Each repository gets a bare mirror under the data folder, cloned once and fetched
incrementally after; a ref is resolved to a commit at submit time (recorded on the job), and
the commit's tree (or a folder of it) is written out once per commit into a folder that the
snapshot store then records. The same commit again finds that folder unchanged: the snapshot
store's stat cache makes it a lookup, nothing copied. Every git command has a time limit (on
its whole process group: a remote that never answers leaves no helper behind) and never
prompts, so a wrong URL, an unknown ref or a refused login is a clear error, not a hang. A tree
over the snapshot limit is refused from its listing, before a byte of it is written; symlinks
that lead out of the tree are left out (as a folder workspace leaves them out) and said so.
Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from typing import IO, Any, Optional

from ..storage.snapshots import human_size

_SHA = re.compile(r"[0-9a-f]{40}")
#: never ask for a password, never run a command through a URL
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes", "GIT_CONFIG_NOSYSTEM": "1"}
_SAFE = ["-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "core.symlinks=true"]
_LEFT_OUT = ".left-out"  # beside a tree's folder: what of the commit is not in it, and why


class GitError(ValueError):
    """A repository or ref that cannot be used; `field` says which part of the spec."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _popen(argv: list[str], cwd: Optional[Path], **kwargs: Any) -> subprocess.Popen:
    """git in a session of its own, so that a time-out can end the whole group: killing only
    git would leave its git-remote-http or ssh child blocked on the remote forever."""
    return subprocess.Popen(["git", *_SAFE, *argv], cwd=cwd, env={**os.environ, **_ENV}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kwargs)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.returncode is not None:  # reaped: its id may be another process's now
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives git while a child of it lives
    except ProcessLookupError:
        pass


class GitSources:
    def __init__(self, root: Path, timeout: float = 120.0, max_bytes: int = 1 << 30):
        self.root, self.timeout, self.max_bytes = Path(root), timeout, max_bytes
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def _run(self, *args: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
        with _popen(list(args), cwd, text=True) as proc:
            try:
                out, err = proc.communicate(timeout=self.timeout)
            except BaseException:  # the time limit, or the thread interrupted: nothing left running
                _kill_group(proc)
                raise
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def _git(self, *args: str, cwd: Optional[Path] = None, field: str = "git.url") -> str:
        try:
            done = self._run(*args, cwd=cwd)
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
            try:
                self._git("clone", "--mirror", "--quiet", "--", url, str(partial))
            except GitError:
                shutil.rmtree(partial, ignore_errors=True)
                raise
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
            if not (_SHA.fullmatch(wanted) and self._kind(mirror, f"{wanted}^{{commit}}")):
                self._git("fetch", "--prune", "--quiet", "origin", cwd=mirror)  # only what is new
            try:
                found = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{wanted}^{{commit}}",
                                  cwd=mirror, field="git.ref").strip()
            except GitError:
                raise GitError("git.ref", f"no branch, tag or commit {wanted!r} in {url}") from None
            return found, self._tree(mirror, found, subdir)

    def left_out(self, folder: Path) -> list[str]:
        """Notes for a job on a tree's folder: what of the commit is not in it, and why."""
        try:
            lines = (folder.parent / (folder.name + _LEFT_OUT)).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [f"left out of the workspace: {path} ({why})"
                for path, _, why in (line.partition("\t") for line in lines)]

    def _tree(self, mirror: Path, commit: str, subdir: str) -> Path:
        """The commit's files, written out once (and kept: the next job of it reads this folder)."""
        name = commit + (f"-{hashlib.sha1(subdir.encode()).hexdigest()[:10]}" if subdir else "")
        folder = self.root / "trees" / name
        if folder.is_dir():
            return folder
        target = f"{commit}:{subdir}" if subdir else commit
        if subdir and self._kind(mirror, target) != "tree":
            raise GitError("git.subdir", f"no folder {subdir!r} at commit {commit[:12]}")
        self._check_size(mirror, target, "git.subdir" if subdir else "git.ref")
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=name + ".", dir=folder.parent))
        try:
            left_out = self._archive(mirror, target, partial)
            if left_out:
                Path(str(partial) + _LEFT_OUT).write_text("".join(f"{p}\t{why}\n" for p, why in left_out))
                os.replace(str(partial) + _LEFT_OUT, str(folder) + _LEFT_OUT)
            os.rename(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            if folder.is_dir():  # another job of the same commit got there first
                return folder
            raise
        return folder

    def _check_size(self, mirror: Path, target: str, field: str) -> None:
        """Refuse a tree over the snapshot limit from its listing: a few MB of repository can
        hold GBs of compressible files, which must not be written out only to be refused."""
        sizes = []
        for entry in self._git("ls-tree", "-r", "-l", "-z", target, cwd=mirror, field=field).split("\0"):
            meta, _, path = entry.partition("\t")
            size = meta.split()[-1] if meta else "-"
            if size.isdigit():  # blobs; a submodule's commit has no size
                sizes.append((int(size), path))
        total = sum(size for size, _ in sizes)
        if total > self.max_bytes:
            largest = ", ".join(f"{path} ({human_size(size)})" for size, path in sorted(sizes, reverse=True)[:5])
            raise GitError(field, f"{target[:12]}{target[40:]} holds {human_size(total)} in {len(sizes)} files, over "
                           f"the {human_size(self.max_bytes)} snapshot limit (max_snapshot_size); largest: {largest}")

    def _archive(self, mirror: Path, target: str, folder: Path) -> list[tuple[str, str]]:
        """`target`'s tree written into `folder` by `git archive`, within the time limit; what was
        left out, and why."""
        with _popen(["archive", "--format=tar", target], mirror) as proc:
            timer = threading.Timer(self.timeout, _kill_group, (proc,))
            timer.start()
            try:
                assert proc.stdout is not None and proc.stderr is not None
                left_out: list[tuple[str, str]] = []
                try:
                    left_out = _extract(proc.stdout, folder, self.max_bytes)
                except tarfile.TarError as exc:  # a member refused, or the stream cut short by git failing
                    proc.stdout.close()  # git, if still writing, stops on the broken pipe
                    if proc.wait() in (0, -signal.SIGPIPE):
                        raise GitError("git.ref", f"the files of {target[:12]} cannot be written: {exc}") from None
                if proc.wait() != 0:
                    if not timer.is_alive():
                        raise GitError("git.url", f"git did not answer within {self.timeout:g} s (archive)")
                    raise GitError("git.url", proc.stderr.read().decode().strip() or "git archive failed")
            finally:
                timer.cancel()
                _kill_group(proc)
        return left_out

    def _kind(self, mirror: Path, target: str) -> str:
        """The type of `target` ('commit', 'tree', ...), '' when the mirror has no such object."""
        try:
            done = self._run("cat-file", "-t", target, cwd=mirror)
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""


def _extract(stream: IO[bytes], folder: Path, max_bytes: int) -> list[tuple[str, str]]:
    """Files and folders inside `folder` first, symlinks after, each made in a real folder of the
    tree; then every symlink that resolves outside the tree is removed (checked when all exist:
    `a -> .` makes `b -> a/..` lead out). A job's files never lead the server to host files, as
    a folder workspace's outside links are left out. Returns (path, why) for what was left out."""
    real, links, left_out, written = os.path.realpath(folder), [], [], 0
    extract_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if name == "." or name.startswith(("/", "..")):
                continue
            if member.issym():
                links.append((name, member.linkname))
            elif member.isfile() or member.isdir():
                written += member.size
                if written > max_bytes:  # the listing said otherwise: still, never past the limit
                    raise GitError("git.ref", f"the files take more than {human_size(max_bytes)} (max_snapshot_size)")
                tar.extract(member, folder, **extract_filter)
            else:
                left_out.append((name, "neither a file, a folder nor a symlink"))
    made = []
    for name, target in links:
        path = os.path.join(real, name)
        if os.path.realpath(os.path.dirname(path)) != os.path.dirname(path):
            left_out.append((name, "a symlink inside a symlinked folder"))
            continue
        try:
            os.symlink(target, path)
            made.append((name, path))
        except OSError as exc:  # a file of the same name (a tree with duplicate entries)
            left_out.append((name, f"symlink not made: {exc.strerror}"))
    for name, path in [(n, p) for n, p in made if not _inside(os.path.realpath(p), real)]:
        os.unlink(path)
        left_out.append((name, "symlink points outside the repository"))
    return left_out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)
