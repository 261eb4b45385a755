"""The SQLite history: a terminal status never changes; pagination is exact."""

import asyncio
from datetime import timedelta

import pytest

from jupyter_jobs.logs import JobLog
from jupyter_jobs.models import Job, JobSpec, JobStatus, utcnow
from jupyter_jobs.store import Store


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
    assert [c.data for c in log.read(0)] == [b"na"]  # half a character is not served yet
    assert [c.data for c in log.read(0, final=True)] == ["naï".encode()[:3]]
    log.append("stdout", "naïve ".encode()[3:])
    log.append("stderr", b"oops\n")
    log.close()
    reopened = JobLog(tmp_path)
    assert [(c.stream, c.data) for c in reopened.read(0)] == [("stdout", "naïve ".encode()), ("stderr", b"oops\n")]
    assert reopened.stream_sizes() == {"stdout": len("naïve ".encode()), "stderr": 5}
