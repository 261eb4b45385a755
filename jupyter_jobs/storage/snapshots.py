"""Workspace snapshots: what a job sees is the folder as it was at submit time.

Files are stored once, by content (BLAKE3, 32 bytes; blobs stored under sha256 by earlier
versions stay valid, their digests are only names): new contents are appended to pack files
(one per storing thread, each written sequentially, as tar writes) and an index maps each
digest to its place; a snapshot is a manifest of paths pointing at digests. A per-folder
stat cache (size, mtime, inode) lets an unchanged re-snapshot skip reading files at all.
Jobs run in a private copy made from the manifest. Garbage collection drops what no job refers to any more.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from collections import Counter, OrderedDict
from collections.abc import Iterator

from blake3 import blake3

from . import workspace
from .workspace import _File

_CHUNK = 1 << 20
_INDEX = struct.Struct("<32s8sQQ")  # digest, pack name, offset, size


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class SnapshotError(ValueError):
    """The folder cannot be snapshotted (missing, too large); the message says what to do."""


_Cached = tuple[tuple[int, int, int], str, int]  # (size, mtime_ns, inode), digest, mode


@dataclass
class SnapshotInfo:
    """What a snapshot holds; `skipped` lists what was left out and why (e.g. outside symlinks)."""

    id: str
    files: int
    size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


class _Lane:
    """One pack file, written by one thread only (threads writing one file queue on its lock)."""

    def __init__(self, packs: Path):
        self.name = uuid.uuid4().hex[:16]
        self.path = packs / f"{self.name}.pack"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0


class _PackWriter:
    """The new blobs of one snapshot, stored by several threads: each thread appends to a pack
    file of its own (a lane), so their writes go on in parallel; a blob's place is reserved
    under a lock, so the same content is stored once however many files hold it."""

    def __init__(self, store: SnapshotStore):
        self.store = store
        self.lanes: dict[int, _Lane] = {}
        self.records: list[tuple[str, str, int, int]] = []  # digest, pack, offset, size
        self._lock = threading.Lock()

    def reserve(self, digest: str, size: int) -> Optional[tuple[int, int]]:
        """Where to write a blob (file, offset), or None when its content is stored already."""
        with self._lock:
            if digest in self.store._index:
                return None
            lane = self.lanes.get(threading.get_ident())
            if lane is None:
                lane = self.lanes[threading.get_ident()] = _Lane(self.store.packs)
            offset = lane.size
            lane.size += size
            self.records.append((digest, lane.name, offset, size))
            self.store._index[digest] = (lane.name, offset, size)
            return lane.fd, offset

    def unreserve(self, digest: str) -> None:
        """Forget a blob whose bytes did not make it into the pack intact."""
        with self._lock:
            mine = {p for d, p, _, _ in self.records if d == digest}
            self.records = [r for r in self.records if r[0] != digest]
            if self.store._index.get(digest, ("",))[0] in mine:
                del self.store._index[digest]

    def store_file(self, path: str, expected: _File) -> Optional[str]:
        """Hash a file, then copy it into the pack if its content is new; returns its digest,
        or None (with `expected.skipped` set) when the file cannot be read or vanished."""
        for _ in range(3):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError as exc:
                expected.skipped = f"unreadable: {exc.strerror}"
                return None
            place = None
            try:
                st = os.fstat(fd)
                buf = self.store._buffer()
                if st.st_size < len(buf):  # read once: hashed and written from memory
                    data = buf[:os.readv(fd, [buf])]
                    digest = blake3(data).hexdigest()
                    place = self.reserve(digest, len(data))
                    done = 0
                    while place is not None and done < len(data):
                        done += os.pwrite(place[0], data[done:], place[1] + done)
                else:  # large: hashed as it streams by, then copied by the kernel if new
                    hasher = blake3()
                    while n := os.readv(fd, [buf]):
                        hasher.update(buf[:n])
                    digest = hasher.hexdigest()
                    place = self.reserve(digest, st.st_size)
                    done = 0
                    while place is not None and done < st.st_size:
                        n = os.copy_file_range(fd, place[0], st.st_size - done, done, place[1] + done)
                        if n == 0:
                            break
                        done += n
                after = os.fstat(fd)
            except BaseException:
                if place is not None:
                    self.unreserve(digest)
                raise
            finally:
                os.close(fd)
            same = (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
            if same and (place is None or done == st.st_size):  # (a short read shows as a size change)
                expected.size, expected.mtime_ns = st.st_size, st.st_mtime_ns
                return digest
            if place is not None:
                self.unreserve(digest)  # it changed while being copied: these bytes are not `digest`
        expected.skipped = "kept changing while the snapshot was taken"
        return None

    def abandon(self) -> None:
        """A snapshot failed: none of its blobs may be used."""
        for digest, *_ in list(self.records):
            self.unreserve(digest)
        for lane in self.lanes.values():
            os.close(lane.fd)
            lane.path.unlink()

    def close(self) -> None:
        """Make the blobs findable: data first, then their index records."""
        recorded = {pack for _, pack, _, _ in self.records}
        for lane in self.lanes.values():
            os.close(lane.fd)
            if lane.name not in recorded:  # an empty file's blob is recorded in its lane: kept
                lane.path.unlink()
        if self.records:
            raw = b"".join(_INDEX.pack(bytes.fromhex(d), bytes.fromhex(p), o, n) for d, p, o, n in self.records)
            fd = os.open(self.store.index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                done = 0
                while done < len(raw):
                    done += os.write(fd, memoryview(raw)[done:])
                end, inode = os.lseek(fd, 0, os.SEEK_CUR), os.fstat(fd).st_ino
            finally:
                os.close(fd)
            store = self.store  # its lock is held: nothing but another process appends meanwhile
            # records nobody else wrote in between are in its index already: not read back (an
            # unknown inode: this made the file)
            if store._index_inode in (inode, 0) and end - len(raw) == store._index_read:
                store._index_read, store._index_inode = end, inode


class SnapshotStore:
    """Content-addressed snapshots under one folder: `packs/` (blob data and an index of it)
    and `snapshots/` (manifests, and a stat cache per source folder)."""

    def __init__(self, root: Path, max_bytes: int = 1 << 30, threads: Optional[int] = None):
        self.root = Path(root)
        self.packs = self.root / "packs"
        self.manifests = self.root / "snapshots"
        self.tmp = self.root / "tmp"
        self.index_path = self.packs / "index"
        self.max_bytes = max_bytes
        for d in (self.packs, self.manifests, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        # a thread per core: more only contend (measured on 2 cores: 4 threads 1.5-2.1 s, 2 threads 1.3-1.7 s)
        self._threads = threads or min(8, len(os.sched_getaffinity(0)))
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="jobs-snapshot")
        self._buffers = threading.local()
        self._stat_memo: OrderedDict[Path, tuple[tuple[int, int, int], tuple[str, list, dict[str, _Cached]]]] = (
            OrderedDict())
        self._index: dict[str, tuple[str, int, int]] = {}
        self._index_read = 0
        self._index_inode = 0
        self._lock = threading.Lock()
        # garbage collection waits for snapshots under way; a new snapshot is pinned (kept) until
        # the job that uses it is recorded
        self._gate = threading.Condition()
        self._busy = 0
        self._pinned: Counter[str] = Counter()
        self._epoch = 0  # unpins since a collection's `mark()` still count as live for it
        self._unpinned: dict[str, int] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _buffer(self) -> memoryview:
        """A storing thread's own read buffer, kept: allocating one per file made every snapshot
        after a process's first about twice as slow (measured: 1.4 s, then 2.9-3.1 s per GiB)."""
        buf = getattr(self._buffers, "buf", None)
        if buf is None:
            buf = self._buffers.buf = memoryview(bytearray(_CHUNK))
        return buf

    def _refresh_index(self) -> None:
        """Read index records appended since the last look (by this or another process)."""
        try:
            with open(self.index_path, "rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                if inode != self._index_inode:  # rewritten by a garbage collection: read it afresh
                    self._index, self._index_read, self._index_inode = {}, 0, inode
                fh.seek(self._index_read)
                raw = fh.read()
        except FileNotFoundError:
            return
        usable = len(raw) - len(raw) % _INDEX.size
        for digest, pack, offset, size in _INDEX.iter_unpack(raw[:usable]):
            self._index.setdefault(digest.hex(), (pack.hex(), offset, size))
        self._index_read += usable

    def _has(self, digest: str) -> bool:
        return digest in self._index

    def blob_count(self) -> int:
        with self._lock:
            self._refresh_index()
            return len(self._index)

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self, source: Path) -> SnapshotInfo:
        """Record `source` as it is now, pinned until `unpin` (the job using it is recorded).
        Raises SnapshotError when it is missing or too large."""
        with self._gate:
            self._busy += 1
        try:
            info = self._snapshot(source)
            with self._gate:
                self._pinned[info.id] += 1
            return info
        finally:
            with self._gate:
                self._busy -= 1
                self._gate.notify_all()

    def unpin(self, snap_id: str) -> None:
        with self._gate:
            self._pinned[snap_id] -= 1
            if self._pinned[snap_id] <= 0:
                del self._pinned[snap_id]
            self._unpinned[snap_id] = self._epoch

    def mark(self) -> int:
        """Call before reading which snapshots jobs use; pass the result to `collect`, so a job
        recorded (and its snapshot unpinned) in between still counts."""
        with self._gate:
            self._epoch += 1
            return self._epoch

    def _snapshot(self, source: Path) -> SnapshotInfo:
        source = Path(source)
        if not source.is_dir():
            raise SnapshotError(f"folder {str(source)!r} does not exist")
        found = workspace.scan(source)
        total = sum(f.size for f in found.files)
        if total > self.max_bytes:
            raise SnapshotError(_too_large(found.files, total, self.max_bytes))
        cache_path = self.manifests / f"latest-{hashlib.sha1(str(source.resolve()).encode()).hexdigest()}"
        cached_id, cached_shape, cached = self._load_stat_cache(cache_path)
        with self._lock:  # a blob the cache names may have been collected since
            self._refresh_index()
            stored = self._index
        todo = []
        for f in found.files:
            hit = cached.get(f.path)
            if hit and hit[0] == f.key() and hit[2] == f.mode and hit[1] in stored:
                f.digest = hit[1]
            else:
                todo.append(f)
        found.links.sort()
        found.dirs.sort()
        shape = [[list(link) for link in found.links], found.dirs]
        if not todo and len(cached) == len(found.files) and cached_shape == shape and cached_id:
            return SnapshotInfo(cached_id, len(found.files), total, found.skipped)  # nothing changed
        if todo:
            self._store_all(os.path.realpath(source), todo)
            found.skipped += [(f.path, f.skipped) for f in todo if f.skipped]
            found.files = [f for f in found.files if not f.skipped]
            total = sum(f.size for f in found.files)
        found.files.sort(key=lambda f: f.path)
        body = {"files": [[f.path, f.mode, f.size, f.digest] for f in found.files], "links": shape[0],
                "dirs": shape[1]}
        blob = json.dumps(body, separators=(",", ":")).encode()
        snap_id = hashlib.sha256(blob).hexdigest()[:20]
        manifest = self.manifests / f"{snap_id}.json"
        if not manifest.exists():
            self._atomic_write(manifest, blob)
        self._save_stat_cache(cache_path, snap_id, shape, found.files)
        return SnapshotInfo(snap_id, len(found.files), total, found.skipped)

    def _store_all(self, root: str, todo: list[_File]) -> None:
        """Store new contents; files that cannot be read get `skipped` set instead of a digest."""
        with self._lock:  # one snapshot stores at a time: a blob is complete before it is used
            self._refresh_index()
            pack = _PackWriter(self)

            def store(batch: list[_File]) -> None:
                for f in batch:
                    f.digest = pack.store_file(os.path.join(root, f.path), f) or ""

            # in batches of files (a task per file cost more than the work of a small one)
            size = max(1, min(64, len(todo) // (8 * self._threads) or 1))
            futures = [self._pool.submit(store, todo[i:i + size]) for i in range(0, len(todo), size)]
            wait(futures)  # every copy into the pack is over before it is closed or dropped
            try:
                for future in futures:
                    future.result()
            except BaseException:
                pack.abandon()
                raise
            pack.close()

    def _load_stat_cache(self, path: Path) -> tuple[Optional[str], list, dict[str, _Cached]]:
        """What the last snapshot of this folder saw: its id, links and dirs, and per file
        (size, mtime, inode) -> digest, so unchanged files are neither read nor stored. The
        last few folders' caches are kept parsed, while their file is the one this wrote."""
        try:
            st = os.stat(path)
            memo = self._stat_memo.get(path)
            if memo is not None and memo[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
                snap_id, shape, files = memo[1]
            else:
                data = json.loads(path.read_bytes())
                files = {p: ((v[0], v[1], v[2]), v[3], v[4]) for p, v in data["files"].items()}
                snap_id, shape = data["id"], data["shape"]
            if not (self.manifests / f"{snap_id}.json").exists():
                return None, [], files
            return snap_id, shape, files
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None, [], {}

    def _save_stat_cache(self, path: Path, snap_id: str, shape: list, files: list[_File]) -> None:
        body = {"id": snap_id, "shape": shape,
                "files": {f.path: [f.size, f.mtime_ns, f.ino, f.digest, f.mode] for f in files}}
        self._atomic_write(path, json.dumps(body, separators=(",", ":")).encode())
        st = os.stat(path)
        with self._lock:
            self._stat_memo[path] = ((st.st_ino, st.st_size, st.st_mtime_ns),
                                     (snap_id, shape, {f.path: (f.key(), f.digest, f.mode) for f in files}))
            self._stat_memo.move_to_end(path)
            while len(self._stat_memo) > 8:
                self._stat_memo.popitem(last=False)

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
        packs: dict[str, int] = {}
        try:
            with self._lock:  # opened before a collection can rewrite them (an open pack stays readable)
                self._refresh_index()
                where = [self._index[f[3]] for f in body["files"]]
                for name in {w[0] for w in where}:
                    try:
                        packs[name] = os.open(self.packs / f"{name}.pack", os.O_RDONLY)
                    except FileNotFoundError:  # an earlier release dropped a pack of empty blobs only
                        if any(w[2] for w in where if w[0] == name):
                            raise

            def copy(item: tuple[list, tuple[str, int, int]]) -> None:
                (path, mode, _size, _digest), (pack, offset, size) = item
                fd = os.open(dest / path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode | stat.S_IWUSR)
                try:
                    done = 0
                    while done < size:
                        n = os.copy_file_range(packs[pack], fd, size - done, offset + done)
                        if n == 0:
                            raise OSError(f"pack {pack} is truncated")
                        done += n
                finally:
                    os.close(fd)

            list(self._pool.map(copy, zip(body["files"], where)))
        finally:
            for fd in packs.values():
                os.close(fd)
        for path, target in body["links"]:
            os.symlink(target, dest / path)

    # -- garbage collection ---------------------------------------------------------------
    def collect(self, live: set[str], since: int) -> dict[str, int]:
        """Drop manifests no job uses (`live`, read after `mark()` returned `since`; plus pinned
        ones) and the blobs only they used: packs with no live blob are deleted, packs with some
        are rewritten. Snapshots wait meanwhile. Returns what was freed."""
        with self._gate:
            self._gate.wait_for(lambda: self._busy == 0)
            recent = {i for i, epoch in self._unpinned.items() if epoch >= since}
            self._unpinned = {i: self._unpinned[i] for i in recent}
            live = live | set(self._pinned) | recent
            with self._lock:
                return self._collect(live)

    def _collect(self, live: set[str]) -> dict[str, int]:
        freed = {"manifests": 0, "blobs": 0, "bytes": 0}
        used: set[str] = set()
        for path in self.manifests.glob("*.json"):
            if path.stem in live:
                used.update(f[3] for f in json.loads(path.read_bytes())["files"])
            else:
                path.unlink(missing_ok=True)
                freed["manifests"] += 1
        self._refresh_index()
        by_pack: dict[str, list[tuple[str, int, int]]] = {}
        for digest, (pack, offset, size) in self._index.items():
            by_pack.setdefault(pack, []).append((digest, offset, size))
        index: dict[str, tuple[str, int, int]] = {}
        dropped = []
        for pack, blobs in by_pack.items():
            kept = [b for b in blobs if b[0] in used]
            freed["blobs"] += len(blobs) - len(kept)
            freed["bytes"] += sum(b[2] for b in blobs if b[0] not in used)
            if len(kept) == len(blobs):
                index.update((d, (pack, o, n)) for d, o, n in blobs)
            else:
                index.update(_repack(self.packs, pack, kept) if kept else {})
                dropped.append(pack)
        if not dropped:
            return freed  # every pack is live: the index stays as it is
        raw = b"".join(_INDEX.pack(bytes.fromhex(d), bytes.fromhex(p), o, n) for d, (p, o, n) in index.items())
        self._atomic_write(self.index_path, raw)  # the new places first: a crash here loses nothing
        self._index, self._index_read = index, len(raw)
        self._index_inode = os.stat(self.index_path).st_ino
        for pack in dropped:  # only then the old packs
            (self.packs / f"{pack}.pack").unlink(missing_ok=True)
        return freed

    def iter_paths(self, snap_id: str) -> Iterator[str]:
        for path, *_ in self.manifest(snap_id)["files"]:
            yield path


def _too_large(files: list[_File], total: int, max_bytes: int) -> str:
    largest = sorted(files, key=lambda f: f.size, reverse=True)[:5]
    lines = "\n".join(f"  {human_size(f.size):>10}  {f.path}" for f in largest)
    return (
        f"the workspace holds {human_size(total)} in {len(files)} files, over the "
        f"{human_size(max_bytes)} snapshot limit. Largest files:\n{lines}\n"
        "Exclude what the job does not need with a .jobignore file (gitignore syntax) in the "
        f"workspace, e.g. a line '{largest[0].path}', or keep data in the storage folder."
    )


def _repack(packs: Path, pack: str, blobs: list[tuple[str, int, int]]) -> dict[str, tuple[str, int, int]]:
    """Copy a pack's live blobs into a new pack (the kernel copies: copy_file_range)."""
    name = uuid.uuid4().hex[:16]
    moved, offset = {}, 0
    src = os.open(packs / f"{pack}.pack", os.O_RDONLY)
    dst = os.open(packs / f"{name}.pack", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for digest, start, size in blobs:
            done = 0
            while done < size:
                n = os.copy_file_range(src, dst, size - done, start + done, offset + done)
                if n == 0:
                    raise OSError(f"pack {pack} is truncated")
                done += n
            moved[digest] = (name, offset, size)
            offset += size
        os.fsync(dst)
    finally:
        os.close(src)
        os.close(dst)
    return moved
