"""The SQLite history: a terminal status never changes; pagination is exact."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from jupyter_jobs.storage.logs import JobLog
from jupyter_jobs.domain.job import Job, utcnow
from jupyter_jobs.domain.status import JobStatus
from jupyter_jobs.domain.spec import JobSpec
from jupyter_jobs.storage.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "jobs.db")
    yield s
    s.close()


def job(i: int, **kw) -> Job:
    return Job(id=f"job{i}", spec=JobSpec(command="true"), backend="local", project=kw.pop("project", "p"),
               created_at=utcnow() + timedelta(seconds=i), **kw)


async def test_terminal_status_never_changes(store, tmp_path):
    await store.insert(job(1), tmp_path / "job1")
    assert await store.transition("job1", JobStatus.RUNNING, utcnow(), started_at=utcnow())
    assert await store.transition("job1", JobStatus.SUCCEEDED, utcnow(), exit_code=0)
    assert not await store.transition("job1", JobStatus.FAILED, utcnow(), exit_code=1)
    assert not await store.transition("job1", JobStatus.CANCELLED, utcnow())
    saved = await store.get("job1")
    assert saved.status == JobStatus.SUCCEEDED and saved.exit_code == 0
    assert [e["status"] for e in await store.events("job1")] == ["queued", "running", "succeeded"]


async def test_history_survives_reopening(tmp_path):
    first = Store(tmp_path / "jobs.db")
    await first.insert_many([(job(i, project="a" if i % 2 else "b"), tmp_path / f"j{i}") for i in range(25)])
    first.close()
    again = Store(tmp_path / "jobs.db")
    try:
        assert await again.count() == 25
        seen, cursor = [], None
        while True:
            page, cursor = await again.list(limit=7, cursor=cursor, project="a")
            seen += [j.id for j in page]
            if cursor is None:
                break
        assert seen == [f"job{i}" for i in range(24, -1, -1) if i % 2]
    finally:
        again.close()


async def test_concurrent_writes_all_land(store, tmp_path):
    await asyncio.gather(*(store.insert(job(i), tmp_path / f"j{i}") for i in range(200)))
    assert await store.count() == 200


def test_log_is_readable_after_reopen_and_split_characters_wait(tmp_path):
    log = JobLog(tmp_path)
    log.append("stdout", "naïve ".encode()[:3])  # 'na' + first byte of 'ï'
    assert [c.data for c in log.read(0)] == [b"na"]  # half a character is held back...
    assert [c.data for c in log.read(0, final=True)] == [b"na"]  # ...until it is whole
    log.append("stdout", "naïve ".encode()[3:])
    log.append("stderr", b"oops\n")
    log.close()
    reopened = JobLog(tmp_path)
    assert [(c.stream, c.data) for c in reopened.read(0)] == [("stdout", "naïve ".encode()), ("stderr", b"oops\n")]
    assert reopened.stream_sizes() == {"stdout": len("naïve ".encode()), "stderr": 5}


def test_bytes_are_never_dropped_at_stream_switches(tmp_path):
    log = JobLog(tmp_path)
    log.append("stdout", b"x\xe2\x82")  # a character split across writes...
    log.append("stderr", b"E\n")  # ...with the other stream in between
    log.append("stdout", b"\xac\n\xff\xfe binary\n")
    log.finished = True
    got = b"".join(c.data for c in log.read(0, final=True))
    assert got == b"xE\n\xe2\x82\xac\n\xff\xfe binary\n"  # the character lands whole, after E
    assert [(c.stream, c.data) for c in log.read(0, final=True)] == [
        ("stdout", b"x"), ("stderr", b"E\n"), ("stdout", "€".encode() + b"\n\xff\xfe binary\n")]
    # chunk by chunk from server-given offsets: the same bytes
    pieces, offset = [], 0
    while chunks := log.read(offset, limit=3, final=True):
        pieces += [c.data for c in chunks]
        offset = chunks[-1].end
    assert b"".join(pieces) == got


async def test_follow_waits_on_a_held_back_character_without_spinning(tmp_path):
    from jupyter_jobs.storage.logs import follow

    log = JobLog(tmp_path, asyncio.get_running_loop())
    log.append("stdout", "done \u20ac".encode()[:-1])  # the euro sign's last byte is still to come
    reads = 0
    original = log.read

    def counting(*args):
        nonlocal reads
        reads += 1
        return original(*args)

    log.read = counting
    received: list[bytes] = []

    async def consume():
        async for chunk in follow(log, 0, follow=True, poll=0.05):
            received.append(chunk.data)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    assert b"".join(received) == b"done " and reads < 30  # waiting, not spinning
    log.append("stdout", "\u20ac".encode()[-1:])
    log.finished = True
    log.finish()
    await asyncio.wait_for(task, 5)
    assert b"".join(received).decode() == "done \u20ac"


async def test_non_follow_read_of_a_finished_log_includes_the_tail(tmp_path):
    from jupyter_jobs.storage.logs import follow

    log = JobLog(tmp_path)
    log.append("stdout", b"ok \xe2")  # ends inside a character (e.g. the job was killed)
    log.close()  # the writer is done: what was held back goes out as it is
    log.finished = True
    got = b"".join([c.data async for c in follow(log, 0, follow=False)])
    assert got == b"ok \xe2"


async def test_a_log_loaded_twice_is_one_log_and_the_other_copy_closes_its_files(tmp_path):
    """A follower and the job's start may load one job's log at once (each in a thread): one
    log is kept, the other's files are closed, not leaked; a new job's log reads nothing."""
    import os

    from jupyter_jobs.storage.logs import LogRegistry

    logs, loop = LogRegistry(), asyncio.get_running_loop()
    fds = len(os.listdir("/proc/self/fd"))
    first, second = await asyncio.gather(*(asyncio.to_thread(logs.load, tmp_path / "a", loop) for _ in range(2)))
    assert logs.adopt("a", first) is first and logs.adopt("a", second) is first
    assert len(os.listdir("/proc/self/fd")) == fds + 2  # the kept log's two files, not four
    first.append("stdout", b"x\n")
    assert logs.get("a") is first and await logs.active("a", tmp_path / "a") is first
    new = logs.new("b", tmp_path / "b", loop)
    assert not (tmp_path / "b").exists() and new.size == 0  # nothing read, nothing opened
    assert logs.new("b", tmp_path / "b", loop) is new and logs.get("b") is new
    new.open_files().append("stdout", b"y\n")
    assert (tmp_path / "b" / "log").read_bytes() == b"y\n"
    logs.close("a")
    logs.close("b")
    assert len(os.listdir("/proc/self/fd")) == fds


async def test_a_history_written_by_the_previous_release_opens_and_upgrades(tmp_path):
    """tests/data/history-0.1.0.db was written by release 0.1.0 (no schema version): one
    finished job, one queued; it must open, keep both, and take new jobs."""
    import shutil
    import sqlite3

    from jupyter_jobs.storage.store import SCHEMA_VERSION

    path = tmp_path / "jobs.db"
    shutil.copy(Path(__file__).parent / "data" / "history-0.1.0.db", path)
    store = Store(path)
    try:
        old = await store.get("aaaaaaaaaaaa")
        assert old.status == JobStatus.SUCCEEDED and old.exit_code == 0 and old.spec.env == {"API_TOKEN": "s3cret"}
        queued, _ = await store.list(status=[JobStatus.QUEUED])
        assert [j.id for j in queued] == ["bbbbbbbbbbbb"] and queued[0].spec.resources.gpus == 1
        assert [e["status"] for e in await store.events("aaaaaaaaaaaa")] == ["queued", "running", "succeeded"]
        new = Job(id="cccccccccccc", spec=JobSpec(command="echo new"), backend="local", project="p")
        await store.insert(new, tmp_path / "jobs" / new.id)
        assert (await store.get(new.id)).spec.command == "echo new"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert (path.stat().st_mode & 0o777) == 0o600  # it holds secrets: private to the server's user
    Store(path).close()  # opening again migrates nothing


async def test_a_history_from_a_newer_release_is_refused_with_a_reason(tmp_path):
    import sqlite3

    from jupyter_jobs.storage.store import SCHEMA_VERSION, StoreError

    path = tmp_path / "jobs.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer jupyter_jobs"):
        Store(path)
