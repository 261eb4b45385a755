"""Workspace snapshots: ignore rules, isolation, content-addressed dedup, symlinks, size cap."""

import os
from pathlib import Path

import pytest

from jupyter_jobs.storage.snapshots import SnapshotError, SnapshotStore


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    s = SnapshotStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel, text in {
        "train.py": "print('train')\n",
        "pkg/model.py": "W = 1\n",
        "data/keep.csv": "a,b\n",
        "data/huge.bin": "x" * 100,
        "logs/run.log": "noise",
        ".git/HEAD": "ref",
        ".venv/bin/python": "#!",
        "venv/lib.py": "",
        "pkg/__pycache__/model.cpython-311.pyc": "pyc",
        ".ipynb_checkpoints/nb-checkpoint.ipynb": "{}",
        "node_modules/x/index.js": "",
        "sub/.gitignore": "local.txt\n",
        "sub/local.txt": "ignored by nested .gitignore",
        "sub/other.txt": "kept",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".gitignore").write_text("logs/\n")
    (root / ".jobignore").write_text("*.bin\n!keep.csv\n")
    return root


def files_of(store: SnapshotStore, snap_id: str) -> set[str]:
    return set(store.iter_paths(snap_id))


def test_ignore_rules(store, src):
    info = store.snapshot(src)
    assert files_of(store, info.id) == {
        "train.py", "pkg/model.py", "data/keep.csv", ".gitignore", ".jobignore", "sub/.gitignore", "sub/other.txt",
    }


def test_private_copy_is_isolated_from_later_edits(store, src, tmp_path):
    info = store.snapshot(src)
    (src / "train.py").write_text("print('edited after submit')\n")
    (src / "new.py").write_text("")
    dest = tmp_path / "job"
    store.materialize(info.id, dest)
    assert (dest / "train.py").read_text() == "print('train')\n"
    assert not (dest / "new.py").exists()
    # the job may write into its copy without touching the stored blobs
    (dest / "pkg/model.py").write_text("W = 2\n")
    again = tmp_path / "job2"
    store.materialize(info.id, again)
    assert (again / "pkg/model.py").read_text() == "W = 1\n"


def test_modes_are_kept(store, src, tmp_path):
    (src / "run.sh").write_text("#!/bin/sh\necho ok\n")
    os.chmod(src / "run.sh", 0o755)
    info = store.snapshot(src)
    store.materialize(info.id, tmp_path / "job")
    assert os.access(tmp_path / "job/run.sh", os.X_OK)


def blob_count(store: SnapshotStore) -> int:
    return SnapshotStore(store.root).blob_count()  # a fresh reader: what is on disk


def test_unchanged_files_are_stored_once(store, src):
    first = store.snapshot(src)
    blobs = blob_count(store)
    assert store.snapshot(src).id == first.id  # identical content: identical snapshot
    assert blob_count(store) == blobs
    (src / "train.py").write_text("print('v2')\n")
    second = store.snapshot(src)
    assert second.id != first.id
    assert blob_count(store) == blobs + 1  # only the changed file is stored again
    # a copy of a file elsewhere in the tree costs no new blob either
    (src / "pkg/model_copy.py").write_text("W = 1\n")
    store.snapshot(src)
    assert blob_count(store) == blobs + 1


def test_unchanged_resnapshot_reads_no_file(store, src, monkeypatch):
    store.snapshot(src)
    opened: list[str] = []
    monkeypatch.setattr(store, "_store_all", lambda root, todo: opened.extend(todo))
    store.snapshot(src)
    assert opened == []


def test_large_file_is_streamed_and_deduplicated(store, src, tmp_path):
    big = os.urandom(3 << 20)
    (src / "weights.pt").write_bytes(big)
    info = store.snapshot(src)
    store.materialize(info.id, tmp_path / "job")
    assert (tmp_path / "job/weights.pt").read_bytes() == big
    assert not list(store.tmp.iterdir())  # no temporary file left behind
    packs = sorted(p.stat().st_size for p in store.packs.glob("*.pack"))
    store.snapshot(src)
    (src / "weights_copy.pt").write_bytes(big)  # same content again: streamed, then cut off
    store.snapshot(src)
    assert sorted(p.stat().st_size for p in store.packs.glob("*.pack")) == packs


def test_symlinks_out_are_not_followed(store, src, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    os.symlink(secret, src / "leak.txt")
    os.symlink(tmp_path, src / "leakdir")
    os.symlink("train.py", src / "alias.py")
    info = store.snapshot(src)
    assert dict(info.skipped) == {
        "leak.txt": "symlink points outside the workspace",
        "leakdir": "symlink points outside the workspace",
    }
    dest = tmp_path / "job"
    store.materialize(info.id, dest)
    assert not (dest / "leak.txt").exists() and not (dest / "leakdir").exists()
    assert os.readlink(dest / "alias.py") == "train.py"
    assert (dest / "alias.py").read_text() == "print('train')\n"


def test_size_cap_names_the_largest_files(tmp_path, src):
    (src / "big1.dat").write_bytes(b"0" * 5000)
    (src / "big2.dat").write_bytes(b"0" * 3000)
    small = SnapshotStore(tmp_path / "small", max_bytes=4000)
    with pytest.raises(SnapshotError) as info:
        small.snapshot(src)
    message = str(info.value)
    assert "big1.dat" in message and "big2.dat" in message and ".jobignore" in message
    assert blob_count(small) == 0  # nothing stored when refused
    (src / ".jobignore").write_text("*.dat\n*.bin\n")
    assert small.snapshot(src).files > 0


def test_missing_folder(store, tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        store.snapshot(tmp_path / "nope")


def test_files_that_vanish_during_a_snapshot_are_left_out(store, src, monkeypatch):
    from jupyter_jobs.storage import workspace

    real_scan = workspace.scan

    def scan_then_delete(root):
        found = real_scan(root)
        (src / "train.py").unlink()  # deleted between listing and reading (an editor's temp file)
        return found

    monkeypatch.setattr(workspace, "scan", scan_then_delete)
    info = store.snapshot(src)
    assert ("train.py", "unreadable: No such file or directory") in info.skipped
    assert "train.py" not in files_of(store, info.id) and "pkg/model.py" in files_of(store, info.id)


def test_stores_of_two_processes_share_one_index(tmp_path, src):
    """Two stores on one folder (two servers' processes) append to one index: each finds the
    other's blobs, and its own appends are not lost when it skips reading them back."""
    first, second = SnapshotStore(tmp_path / "shared"), SnapshotStore(tmp_path / "shared")
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("only in the second store's snapshot")
    try:
        a = first.snapshot(src)
        b = second.snapshot(other)  # appends after the first's records, which it has not read yet
        (src / "new.txt").write_text("a new file, stored by the first store again")
        c = first.snapshot(src)  # reads the second's records, then appends its own
        # 7 contents of `src` kept by its ignore rules, b.txt, new.txt
        assert first.blob_count() == second.blob_count() == SnapshotStore(tmp_path / "shared").blob_count() == 9
        for store, snap in ((second, a), (second, c), (first, b)):
            out = tmp_path / f"out-{snap.id}-{id(store)}"
            store.materialize(snap.id, out)
            assert sorted(p.name for p in out.rglob("*") if p.is_file())
    finally:
        first.close()
        second.close()


def test_a_folder_of_empty_files_materializes(store, tmp_path):
    """An empty file's blob takes no bytes: the pack it is recorded in must be kept all the same
    (one dropped as empty left `ready` and `__init__.py` unreadable for every job)."""
    only = tmp_path / "empty"
    (only / "pkg").mkdir(parents=True)
    (only / "ready").touch()
    (only / "pkg" / "__init__.py").touch()
    info = store.snapshot(only)
    store.materialize(info.id, tmp_path / "job")
    assert (tmp_path / "job" / "ready").read_bytes() == b"" and (tmp_path / "job" / "pkg" / "__init__.py").exists()
    again = SnapshotStore(tmp_path / "store")  # another process: from the index on disk
    try:
        again.materialize(info.id, tmp_path / "job2")
    finally:
        again.close()
    assert (tmp_path / "job2" / "ready").exists()
