"""Workspace snapshots: what a job sees is the folder as it was at submit time.

Files are stored once, by content (sha256), under `blobs/`; a snapshot is a manifest of
paths pointing at blobs. A per-folder stat cache (size, mtime, inode) lets an unchanged
re-snapshot skip reading files at all. Jobs run in a private copy made from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pathspec

from .models import SpecError

DEFAULT_IGNORES = (".git/", ".venv/", "venv/", "__pycache__/", ".ipynb_checkpoints/", "node_modules/")
IGNORE_FILES = (".gitignore", ".jobignore")
_SMALL = 1 << 20  # files up to this size are read whole: their blob may exist already
_CHUNK = 1 << 20


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@dataclass
class SnapshotInfo:
    """What a snapshot holds; `skipped` lists what was left out and why (e.g. outside symlinks)."""

    id: str
    files: int
    size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _File:
    path: str
    mode: int
    size: int
    mtime_ns: int
    ino: int
    digest: str = ""

    def key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.ino)


@dataclass
class _Scan:
    files: list[_File] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class _Ignore:
    """gitignore-style rules: the defaults, plus every .gitignore/.jobignore met on the way down."""

    def __init__(self, rules: list[tuple[str, pathspec.PathSpec]]):
        self.rules = rules

    def descend(self, rel_dir: str, abs_dir: str) -> "_Ignore":
        found = []
        for name in IGNORE_FILES:
            try:
                with open(os.path.join(abs_dir, name), encoding="utf-8", errors="replace") as fh:
                    found.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())))
            except OSError:
                continue
        return _Ignore(self.rules + found) if found else self

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, spec in self.rules:
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False


def _default_ignore() -> _Ignore:
    return _Ignore([("", pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORES))])


def scan(root: Path) -> _Scan:
    """Walk `root` honouring ignore rules; symlinks pointing outside it are skipped, not followed."""
    real_root = os.path.realpath(root)
    out = _Scan()
    stack: list[tuple[str, _Ignore]] = [("", _default_ignore().descend("", real_root))]
    while stack:
        rel_dir, rules = stack.pop()
        abs_dir = os.path.join(real_root, rel_dir)
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            out.skipped.append((rel_dir or ".", f"unreadable: {exc.strerror}"))
            continue
        if rel_dir and not entries:
            out.dirs.append(rel_dir)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                if rules.ignored(rel, entry.is_dir()):
                    continue
                target = os.path.realpath(entry.path)
                if target != real_root and not target.startswith(real_root + os.sep):
                    out.skipped.append((rel, "symlink points outside the workspace"))
                else:
                    out.links.append((rel, os.path.relpath(target, os.path.dirname(entry.path))))
            elif entry.is_dir(follow_symlinks=False):
                if not rules.ignored(rel, True):
                    stack.append((rel, rules.descend(rel, entry.path)))
            elif entry.is_file(follow_symlinks=False):
                if not rules.ignored(rel, False):
                    st = entry.stat(follow_symlinks=False)
                    out.files.append(_File(rel, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino))
            elif not rules.ignored(rel, False):
                out.skipped.append((rel, "not a regular file"))
    return out


class SnapshotStore:
    """Content-addressed snapshots under one folder (`blobs/`, `snapshots/`)."""

    def __init__(self, root: Path, max_bytes: int = 1 << 30, threads: int = 4):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "snapshots"
        self.tmp = self.root / "tmp"
        self.max_bytes = max_bytes
        for d in (self.blobs, self.manifests, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="jobs-snapshot")
        self._made_dirs: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self, source: Path, label: str = "workspace") -> SnapshotInfo:
        """Record `source` as it is now. Raises SpecError (on `label`) when it is too large."""
        source = Path(source)
        if not source.is_dir():
            raise SpecError.one(label, f"{label} folder {str(source)!r} does not exist")
        found = scan(source)
        total = sum(f.size for f in found.files)
        if total > self.max_bytes:
            raise SpecError.one(label, self._too_large(found.files, total))
        cache_path = self.manifests / f"latest-{hashlib.sha1(str(source.resolve()).encode()).hexdigest()}"
        cached = self._load_stat_cache(cache_path)
        todo = []
        for f in found.files:
            hit = cached.get(f.path)
            if hit and hit[0] == f.key():
                f.digest = hit[1]
            else:
                todo.append(f)
        real_root = os.path.realpath(source)
        for f, digest in zip(todo, self._pool.map(lambda f: self._store(os.path.join(real_root, f.path)), todo)):
            f.digest = digest
        found.files.sort(key=lambda f: f.path)
        body = {
            "files": [[f.path, f.mode, f.size, f.digest] for f in found.files],
            "links": sorted(found.links),
            "dirs": sorted(found.dirs),
        }
        blob = json.dumps(body, separators=(",", ":")).encode()
        snap_id = hashlib.sha256(blob).hexdigest()[:20]
        manifest = self.manifests / f"{snap_id}.json"
        if not manifest.exists():
            self._atomic_write(manifest, blob)
        if todo or not cached:
            stat_cache = {f.path: [f.size, f.mtime_ns, f.ino, f.digest] for f in found.files}
            self._atomic_write(cache_path, json.dumps(stat_cache, separators=(",", ":")).encode())
        return SnapshotInfo(snap_id, len(found.files), total, found.skipped)

    def _too_large(self, files: list[_File], total: int) -> str:
        largest = sorted(files, key=lambda f: f.size, reverse=True)[:5]
        lines = "\n".join(f"  {human_size(f.size):>10}  {f.path}" for f in largest)
        return (
            f"the workspace holds {human_size(total)} in {len(files)} files, over the "
            f"{human_size(self.max_bytes)} snapshot limit. Largest files:\n{lines}\n"
            "Exclude what the job does not need with a .jobignore file (gitignore syntax) in the "
            f"workspace, e.g. a line '{largest[0].path}', or keep data in the storage folder."
        )

    def _load_stat_cache(self, path: Path) -> dict[str, tuple[tuple[int, int, int], str]]:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}
        return {p: ((v[0], v[1], v[2]), v[3]) for p, v in data.items()}

    def _blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest[2:]

    def _ensure_dir(self, path: Path) -> None:
        key = str(path)
        if key not in self._made_dirs:
            path.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made_dirs.add(key)

    def _store(self, path: str) -> str:
        """Hash a file and keep its content as a blob unless that content is stored already."""
        with open(path, "rb") as src:
            data = src.read(_SMALL + 1)
            if len(data) <= _SMALL:
                digest = hashlib.sha256(data).hexdigest()
                target = self._blob_path(digest)
                if not target.exists():
                    self._ensure_dir(target.parent)
                    self._atomic_write(target, data)
                return digest
            tmp = self.tmp / uuid.uuid4().hex
            hasher = hashlib.sha256(data)
            with open(tmp, "wb") as dst:
                dst.write(data)
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
        digest = hasher.hexdigest()
        target = self._blob_path(digest)
        self._ensure_dir(target.parent)
        if target.exists():
            tmp.unlink()
        else:
            os.replace(tmp, target)
        return digest

    def _atomic_write(self, path: Path, data: bytes) -> None:
        tmp = self.tmp / uuid.uuid4().hex
        tmp.write_bytes(data)
        os.replace(tmp, path)

    # -- materialize ------------------------------------------------------------------------
    def manifest(self, snap_id: str) -> dict:
        return json.loads((self.manifests / f"{snap_id}.json").read_bytes())

    def materialize(self, snap_id: str, dest: Path) -> None:
        """Write a private, writable copy of a snapshot into `dest` (which must not hold one)."""
        body = self.manifest(snap_id)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        parents = {os.path.dirname(p) for p, *_ in body["files"]} | {os.path.dirname(p) for p, _ in body["links"]}
        for d in sorted(parents | set(body["dirs"])):
            (dest / d).mkdir(parents=True, exist_ok=True)

        def copy(item: list) -> None:
            path, mode, _size, digest = item
            target = dest / path
            shutil.copyfile(self._blob_path(digest), target)
            os.chmod(target, mode | stat.S_IWUSR)

        list(self._pool.map(copy, body["files"]))
        for path, target in body["links"]:
            os.symlink(target, dest / path)

    def iter_paths(self, snap_id: str) -> Iterator[str]:
        for path, *_ in self.manifest(snap_id)["files"]:
            yield path

    def info(self, snap_id: str) -> Optional[SnapshotInfo]:
        try:
            body = self.manifest(snap_id)
        except OSError:
            return None
        return SnapshotInfo(snap_id, len(body["files"]), sum(f[2] for f in body["files"]))
