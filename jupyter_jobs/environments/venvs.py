"""Environments from requirements: a job names its packages (a requirements file in its
workspace, or a list), and runs in an environment built once for them and cached.

For jobs on the host (local, and Slurm without an image) it is a virtual environment made by
uv on top of the job's Python (its packages stay visible: `--system-site-packages`), under the
data folder (Slurm: the shared folder), keyed by the interpreter, the requirements' text and
the package index settings. The first job builds it, holding a lock so that concurrent jobs
of the same requirements wait for that one build; its output streams into the job's log; the
next job finds it ready and installs nothing. The index is the admin's (`pip_index_url`,
`pip_find_links`) and whatever uv/pip configuration the server has. Blocking: call from a thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional
from collections.abc import Sequence

READY = ".jupyter-jobs-env.json"  # written last: an environment without it is a broken build
#: a build folder without its marker, untouched this long and unlocked, is a dead build's
LEFTOVER_AGE = 600.0


class EnvironmentFailed(RuntimeError):
    """The packages could not be installed; the message is the installer's own last words."""


def requirements_text(given: str | list[str] | None, workspace: Path, default: str = "") -> str:
    """What to install: the spec's list, its file's text, or (`auto`) the workspace's
    requirements.txt if there is one; `default` stands in when the spec says nothing."""
    given = given if given is not None else (default or None)
    if given is None:
        return ""
    if isinstance(given, list):
        return "\n".join(given)
    path = workspace / ("requirements.txt" if given == "auto" else given)
    if given == "auto" and not path.is_file():
        return ""
    return path.read_text()


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:
        return shutil.which("uv") or "uv"


class Environments:
    def __init__(self, root: Path, *, index_url: str = "", find_links: Sequence[str] = (), timeout: float = 1800):
        self.root, self.index_url, self.find_links, self.timeout = Path(root), index_url, list(find_links), timeout

    def key(self, base: str, requirements: str) -> str:
        given = json.dumps([base, requirements.strip(), self.index_url, self.find_links])
        return hashlib.sha256(given.encode()).hexdigest()[:20]

    def _index(self) -> list[str]:
        args = ["--no-index"] if self.index_url == "none" else ["--index-url", self.index_url] if self.index_url else []
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    def venv(self, python: str, requirements: str, log: Callable[[bytes], None],
             root: Optional[Path] = None) -> Path:
        """The virtual environment for `requirements` on top of `python`, built once."""
        base = root or self.root
        folder = base / "venv" / self.key(os.path.realpath(python), requirements)
        if (folder / READY).exists():
            os.utime(folder / READY)  # last used, for garbage collection
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build; the others wait for it and use it
            if (folder / READY).exists():
                return folder
            shutil.rmtree(folder, ignore_errors=True)  # a build that died half way
            started = time.monotonic()
            log(b"[jupyter_jobs] environment: building it (once for these requirements)\n")
            try:
                self._run([uv_binary(), "venv", "--quiet", "--system-site-packages", "--python", python,
                           str(folder)], log)
                listing = folder / "requirements.txt"
                listing.write_text(requirements.strip() + "\n")
                self._run([uv_binary(), "pip", "install", "--python", str(folder / "bin" / "python"),
                           *self._index(), "-r", str(listing)], log)
                (folder / READY).write_text(json.dumps({"python": python, "requirements": requirements.strip(),
                                                         "built_at": time.time(),
                                                         "build_seconds": round(time.monotonic() - started, 3)}))
            except BaseException:  # a failed build is retried from scratch: nothing of it is kept
                shutil.rmtree(folder, ignore_errors=True)
                raise
            log(f"[jupyter_jobs] environment: ready in {time.monotonic() - started:.1f} s\n".encode())
        return folder

    def _run(self, argv: list[str], log: Callable[[bytes], None]) -> None:
        env = {**os.environ, "UV_NO_PROGRESS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        except FileNotFoundError:
            raise EnvironmentFailed("uv is not installed on the server (pip install uv)") from None
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            log(b"[jupyter_jobs] environment: " + line)
            tail = (tail + [line.decode(errors="replace").strip()])[-3:]
        if proc.wait(self.timeout) != 0:
            raise EnvironmentFailed("; ".join(t for t in tail if t) or f"{argv[1]} exited with {proc.returncode}")

    def used(self, name: str) -> None:
        """Note that an environment kept elsewhere (an engine's image) was used now."""
        path = self.root / "used.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            seen = json.loads(path.read_text()) if path.exists() else {}
            seen[name] = time.time()
            path.write_text(json.dumps(seen))

    def last_used(self, name: str) -> Optional[float]:
        path = self.root / "used.json"
        return json.loads(path.read_text()).get(name) if path.exists() else None

    @staticmethod
    def doomed(found: list[dict], max_age: Optional[float], max_size: Optional[int], keep_recent: float) -> list[dict]:
        """Which of `found` (with size and last_used_at) go: unused past `max_age`, then the least
        recently used while all take more than `max_size` (none used in the last `keep_recent` s)."""
        found = sorted(found, key=lambda e: e["last_used_at"] or 0)
        total, now, out = sum(e["size"] for e in found), time.time(), []
        for env in found:
            idle = now - (env["last_used_at"] or 0)
            if (max_age is not None and idle > max_age) or (max_size is not None and total > max_size
                                                            and idle > keep_recent):
                out.append(env)
                total -= env["size"]
        return out

    def collect(self, max_age: Optional[float], max_size: Optional[int], keep_recent: float = 3600) -> dict:
        """Remove environments not used for `max_age` seconds, then the least recently used ones
        while all of them take more than `max_size` bytes (never one used in the last
        `keep_recent` seconds: a job may be running in it). Each under its build lock."""
        removed, freed = 0, 0
        for env in self.doomed(self.listing(), max_age, max_size, keep_recent):
            folder = self.root / "venv" / env["id"]
            with open(folder.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                shutil.rmtree(folder, ignore_errors=True)
            removed, freed = removed + 1, freed + env["size"]
        return {"environments_removed": removed, "environment_bytes_freed": freed}

    def remove_leftovers(self, older_than: float = LEFTOVER_AGE) -> dict[str, int]:
        """Remove the folders of builds that died (the server killed mid-build): no completion
        marker, untouched for `older_than` seconds, and no build holding their lock now."""
        removed = 0
        for folder in sorted((self.root / "venv").glob("*")):
            if folder.suffix == ".lock" or not folder.is_dir() or (folder / READY).exists():
                continue
            if time.time() - folder.stat().st_mtime < older_than:
                continue
            with open(folder.with_suffix(".lock"), "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being built now
                if not (folder / READY).exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return {"environment_leftovers_removed": removed}

    def listing(self, root: Optional[Path] = None) -> list[dict]:
        """The environments built, with their size and when each was last used."""
        out = []
        for folder in sorted(((root or self.root) / "venv").glob("*")):
            ready = folder / READY
            if not folder.is_dir() or not ready.exists():
                continue
            meta = json.loads(ready.read_text())
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
            out.append({"id": folder.name, "kind": "venv", "base": meta.get("python"),
                        "requirements": meta.get("requirements", ""), "size": size,
                        "built_at": meta.get("built_at"), "last_used_at": ready.stat().st_mtime})
        return out
