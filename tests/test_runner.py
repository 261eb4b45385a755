"""The job runner's races, driven deterministically through a backend of futures (tests/fakes.py),
over the real service, a real SQLite history and real snapshots. Each runs in milliseconds; the
same races are met by real processes in test_api.py, test_restart.py, test_docker.py and
test_slurm.py."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeBackend
from jupyter_jobs.jobs.gpus import GPU, GPUAllocator
from jupyter_jobs.jobs.housekeeping import Retention
from jupyter_jobs.domain.status import FailureReason, JobStatus
from jupyter_jobs.domain.job import Outcome, verdict
from jupyter_jobs.domain.job import utcnow as store_now
from jupyter_jobs.jobs.service import JobService
from jupyter_jobs.storage.store import Store
from jupyter_jobs.storage.snapshots import SnapshotStore

SPEC = {"command": "train", "backend": "fake"}


async def until(predicate: Any, timeout: float = 5) -> None:
    """Wait (bounded) for something a background task does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


class Harness:
    def __init__(self, root: Path, data: Path, **kwargs: Any):
        self.root, self.data = root, data
        self.backend = FakeBackend()
        self.service = JobService(
            store=Store(data / "jobs.db"), snapshots=SnapshotStore(data), root_dir=root, jobs_dir=data / "jobs",
            storage_dir=data / "storage", backends={"fake": self.backend}, default_backend="fake",
            gpus=GPUAllocator([GPU(i, "fake") for i in range(kwargs.pop("gpus", 0))]), kill_grace=0.05, **kwargs,
        )
        self.backend.store = self.service.store

    async def status(self, job_id: str, *wanted: str, timeout: float = 5) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = await self.service.get(job_id)
            if not wanted or job["status"] in wanted:
                return job
            assert asyncio.get_running_loop().time() < deadline, f"{job_id} stayed {job['status']}"
            await asyncio.sleep(0.002)

    async def started(self, count: int = 1) -> None:
        await until(lambda: len(self.backend.started) >= count)

    async def running(self, **spec: Any) -> dict:
        """Submit a job and wait until the backend runs it."""
        count = len(self.backend.started)
        job = await self.service.submit({**SPEC, **spec})
        await self.started(count + 1)
        return await self.status(job["id"], "running")

    async def reattached(self) -> list:
        await until(lambda: self.backend.reattached)
        return self.backend.reattached


@asynccontextmanager
async def harness(tmp_path: Path, **kwargs: Any):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text("print(1)\n")
    h = Harness(root, tmp_path / "data", **kwargs)
    await h.service.start()
    try:
        yield h
    finally:
        await h.service.close()


# -- the pure rule: outcome + stop reason -> status ------------------------------------------
@pytest.mark.parametrize(("outcome", "stop", "status", "reason"), [
    (Outcome(0), None, JobStatus.SUCCEEDED, None),
    (Outcome(0), "cancel", JobStatus.SUCCEEDED, None),  # it finished before the stop reached it
    (Outcome(143), "cancel", JobStatus.CANCELLED, None),
    (Outcome(143), "timeout", JobStatus.FAILED, FailureReason.TIMEOUT),
    (Outcome(3), None, JobStatus.FAILED, FailureReason.EXIT_CODE),
    (Outcome(137, FailureReason.OOM, "oom"), None, JobStatus.FAILED, FailureReason.OOM),
    (Outcome(None, FailureReason.LOST, "gone"), "cancel", JobStatus.CANCELLED, None),
    (Outcome(None, FailureReason.LOST, "gone"), None, JobStatus.FAILED, FailureReason.LOST),
])
def test_verdict(outcome, stop, status, reason):
    end = verdict(outcome, stop, timeout=5)
    assert (end.status, end.reason) == (status, reason)
    if reason == FailureReason.TIMEOUT:
        assert end.message == "stopped after exceeding its time limit of 5 s"
    if reason == FailureReason.EXIT_CODE:
        assert end.message == "the command exited with code 3"


# -- races -----------------------------------------------------------------------------------
async def test_runs_to_success(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.service.submit(SPEC)
        await h.started()
        assert (await h.status(job["id"], "running"))["status"] == "running"
        h.backend.started[0].end(Outcome(0))
        done = await h.status(job["id"], "succeeded")
        assert [e["status"] for e in done["events"]] == ["queued", "running", "succeeded"]


async def test_cancel_while_the_backend_is_starting_the_job(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.gate = asyncio.get_running_loop().create_future()
        job = await h.service.submit(SPEC)
        await h.backend.starting.wait()
        cancel = asyncio.ensure_future(h.service.cancel(job["id"], wait=2))
        await asyncio.sleep(0.01)
        h.backend.gate.set_result(None)  # the start completes after the cancel was recorded
        cancelled = await cancel
        assert cancelled["status"] == "cancelled"
        await h.started()
        await asyncio.sleep(0.01)
        execution = h.backend.started[0]
        assert execution.signals[:1] == ["TERM"]  # the process that did start is stopped
        await asyncio.sleep(0.05)
        assert (await h.service.get(job["id"]))["status"] == "cancelled"  # never 'running' afterwards


async def test_cancel_while_the_workspace_is_copied_leaves_no_log_open(tmp_path):
    """Cancelled while its start copies the workspace (and loads its log, in the same thread
    step): it never starts, and neither the log's files nor its registration outlive it."""
    import os
    import threading

    async with harness(tmp_path) as h:
        copying, go = threading.Event(), threading.Event()
        materialize = h.service.snapshots.materialize

        def slow_copy(*args: Any) -> None:
            copying.set()
            go.wait(5)
            materialize(*args)

        h.service.snapshots.materialize = slow_copy  # type: ignore[method-assign]
        fds = len(os.listdir("/proc/self/fd"))
        job = await h.service.submit(SPEC)
        await asyncio.to_thread(copying.wait, 5)
        assert (await h.service.cancel(job["id"], wait=2))["status"] == "cancelled"
        go.set()
        await until(lambda: job["id"] not in h.service.queue.active)
        await asyncio.sleep(0.05)
        assert not h.backend.started and h.service.log_files.get(job["id"]) is None
        assert len(os.listdir("/proc/self/fd")) <= fds
        assert (await h.service.get(job["id"]))["status"] == "cancelled"


async def test_cancel_of_a_running_job_terminates_then_kills(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.dies_on_term = False  # it ignores SIGTERM
        job = await h.running()
        await h.service.cancel(job["id"], wait=1)
        assert h.backend.started[0].signals == ["TERM", "KILL"]
        assert (await h.status(job["id"], "cancelled"))["message"] == "cancelled by the user"


async def test_two_cancels_signal_once(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.dies_on_term = False
        job = await h.running()
        await asyncio.gather(h.service.cancel(job["id"], wait=0), h.service.cancel(job["id"], wait=0))
        await h.status(job["id"], "cancelled")
        assert h.backend.started[0].signals == ["TERM", "KILL"]


async def test_timeout_against_an_exit_at_the_same_moment(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.dies_on_term = False
        job = await h.service.submit({**SPEC, "timeout": 0.05})
        await h.started()
        execution = h.backend.started[0]
        await until(lambda: execution.signals)  # the timer fired and asked it to stop...
        execution.end(Outcome(0))  # ...and it exits 0 on its own right then
        assert (await h.status(job["id"], "succeeded", "failed"))["status"] == "succeeded"


async def test_timeout_stops_a_job_that_runs_on(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.service.submit({**SPEC, "timeout": 0.05})
        await h.started()
        failed = await h.status(job["id"], "failed")
        assert failed["reason"] == "timeout" and h.backend.started[0].signals[0] == "TERM"


async def test_a_start_that_fails_frees_its_place(tmp_path):
    async with harness(tmp_path, gpus=1) as h:
        h.backend.fail_start = "no room on the engine"
        job = await h.service.submit({**SPEC, "resources": {"gpus": 1}})
        failed = await h.status(job["id"], "failed")
        assert (failed["reason"], failed["message"]) == ("backend_error", "no room on the engine")
        h.backend.fail_start = None
        second = await h.service.submit({**SPEC, "resources": {"gpus": 1}})
        await h.started()
        assert (await h.status(second["id"], "running"))["gpus"] == [0]  # the GPU was given back


async def test_gpu_waits_and_backend_limit(tmp_path):
    async with harness(tmp_path, gpus=1, max_running=5) as h:
        first = await h.service.submit({**SPEC, "resources": {"gpus": 1}})
        second = await h.service.submit({**SPEC, "resources": {"gpus": 1}})
        await h.started()
        await asyncio.sleep(0.02)
        waiting = await h.service.get(second["id"])
        assert waiting["status"] == "queued"
        assert waiting["waiting"] == "needs 1 GPU(s), 0 of 1 free; #1 in the queue"
        h.backend.started[0].end(Outcome(0))
        await h.status(first["id"], "succeeded")
        await h.started(2)
        assert (await h.status(second["id"], "running"))["gpus"] == [0]


async def test_shutdown_during_a_launch_records_it_running_and_reattaches(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.gate = asyncio.get_running_loop().create_future()
        job = await h.service.submit(SPEC)
        await h.backend.starting.wait()
        closing = asyncio.ensure_future(h.service.close())
        await asyncio.sleep(0.01)
        h.backend.gate.set_result(None)
        await closing  # waited for the launch: the job is recorded before the server goes
        assert h.backend.started[0].detached and not h.backend.started[0].signals

    async with harness(tmp_path) as again:
        assert [e.state for e in await again.reattached()] == [{"fake": 0}]
        again.backend.reattached[0].end(Outcome(0))
        assert (await again.status(job["id"], "succeeded"))["status"] == "succeeded"


async def test_a_stop_under_way_is_finished_after_a_restart(tmp_path):
    async with harness(tmp_path) as h:
        h.backend.dies_on_term = False
        job = await h.running()
        await h.service.cancel(job["id"], wait=0)  # TERM sent; the server goes before the kill

    async with harness(tmp_path) as again:
        execution = (await again.reattached())[0]
        await until(lambda: execution.signals)
        assert execution.signals[:1] == ["TERM"]  # the next server finishes the stop
        execution.end(Outcome(143))
        assert (await again.status(job["id"], "cancelled"))["message"] == "cancelled by the user"


async def test_a_missing_backend_at_restart_marks_the_job_lost(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.running()

    store = Store(tmp_path / "data" / "jobs.db")
    from jupyter_jobs.backends.local import LocalBackend

    service = JobService(store=store, snapshots=SnapshotStore(tmp_path / "data"), root_dir=tmp_path / "root",
                         jobs_dir=tmp_path / "data" / "jobs", storage_dir=tmp_path / "data" / "storage",
                         backends={"local": LocalBackend()}, default_backend="local", gpus=GPUAllocator([]))
    await service.start()
    try:
        lost = await service.get(job["id"])
        assert (lost["status"], lost["reason"]) == ("failed", "lost")
        assert "no longer configured" in lost["message"]
    finally:
        await service.close()


async def test_list_queries_are_checked_the_same_way_for_every_face(tmp_path):
    from jupyter_jobs.domain.errors import SpecError

    async with harness(tmp_path) as h:
        for query, field in [({"status": "bogus"}, "status"), ({"limit": "x"}, "limit"), ({"limit": 0}, "limit"),
                             ({"cursor": -1}, "cursor"), ({"colour": "red"}, "colour")]:
            with pytest.raises(SpecError) as info:
                await h.service.list(**query)
            assert info.value.errors[0].field == field and info.value.status == 400
        assert (await h.service.list(status="queued,running", limit="5"))["jobs"] == []


# -- exactly once ------------------------------------------------------------------------------
async def test_the_launch_is_recorded_before_the_command_may_run(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.running()
        execution = h.backend.started[0]
        assert execution.state_at_release == {"status": "queued", "backend_state": {"fake": 0}}
        assert job["started_at"] is not None


async def launched_but_not_released(tmp_path: Path) -> str:
    """A history as a server leaves it that died between recording a launch and releasing it."""
    async with harness(tmp_path) as h:
        job = await h.running()
    store = Store(tmp_path / "data" / "jobs.db")
    await store.transition(job["id"], JobStatus.QUEUED, store_now(), backend_state={"fake": 0}, started_at=None)
    store.close()
    return job["id"]


async def test_a_recorded_launch_that_was_never_released_is_adopted_not_started_again(tmp_path):
    job_id = await launched_but_not_released(tmp_path)
    async with harness(tmp_path) as again:
        execution = (await again.reattached())[0]
        await asyncio.wait_for(execution.released.wait(), 5)  # adopted and released...
        assert again.backend.started == []  # ...never started a second time
        assert (await again.status(job_id, "running"))["status"] == "running"


async def test_a_launch_that_never_ran_is_queued_again_and_runs_once(tmp_path):
    job_id = await launched_but_not_released(tmp_path)
    async with harness(tmp_path) as again:
        held = (await again.reattached())[0]
        held.end(Outcome(None, not_started=True))  # e.g. a local wrapper that saw its gate close
        await again.started()
        again.backend.started[0].end(Outcome(0))
        done = await again.status(job_id, "succeeded")
        assert len(again.backend.started) == 1
        assert [e["status"] for e in done["events"]].count("succeeded") == 1


# -- retries -----------------------------------------------------------------------------------
async def test_a_lost_job_is_retried_after_a_backoff_and_each_attempt_shows(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.running(retries=2, retry_backoff=0.2)
        h.backend.started[0].end(Outcome(None, FailureReason.LOST, "the node went away"))
        waiting = await h.status(job["id"], "queued")
        assert waiting["attempt"] == 2 and waiting["waiting"].startswith("retrying: attempt 2 starts at")
        await asyncio.sleep(0.05)
        assert len(h.backend.started) == 1  # the backoff holds it back...
        await h.started(2)  # ...then it runs again
        h.backend.started[1].end(Outcome(0))
        done = await h.status(job["id"], "succeeded")
        assert [e["status"] for e in done["events"]] == ["queued", "running", "queued", "running", "succeeded"]
        assert "attempt 1 of 3 failed (lost: the node went away)" in done["events"][2]["message"]


async def test_retries_stop_after_the_last_attempt_and_skip_other_reasons(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.running(retries=1, retry_backoff=0)
        h.backend.started[0].end(Outcome(None, FailureReason.BACKEND_ERROR, "engine gone"))
        await h.started(2)
        h.backend.started[1].end(Outcome(None, FailureReason.BACKEND_ERROR, "engine gone again"))
        failed = await h.status(job["id"], "failed")
        assert (failed["attempt"], failed["message"]) == (2, "engine gone again")
        other = await h.running(retries=3, retry_backoff=0)  # exit codes are not retried by default
        h.backend.started[2].end(Outcome(1))
        assert (await h.status(other["id"], "failed"))["reason"] == "exit_code"
        await asyncio.sleep(0.05)
        assert len(h.backend.started) == 3


# -- disk: retention and garbage collection, over real SQLite and real snapshot packs ----------
async def test_retention_deletes_finished_jobs_by_count_and_age(tmp_path):
    from datetime import timedelta

    async with harness(tmp_path) as h:
        ids = []
        for i in range(4):
            job = await h.running()
            h.backend.started[i].end(Outcome(0))
            await h.status(job["id"], "succeeded")
            ids.append(job["id"])
        queued_while = await h.service.submit(SPEC)  # not finished: never touched by retention
        await h.started(5)
        await h.service.store.update(ids[3], finished_at=store_now() - timedelta(days=40))  # newest, long done
        h.service.housekeeper.retention = Retention({"max_age": "30d", "max_jobs": 2})
        done = await h.service.housekeeper.once()
        assert done["deleted_jobs"] == 3
        left = {j["id"] for j in (await h.service.list())["jobs"]}
        assert left == {ids[2], queued_while["id"]}
        assert not (tmp_path / "data" / "jobs" / ids[0]).exists()


async def test_garbage_collection_is_safe_while_jobs_are_submitted(tmp_path):
    async with harness(tmp_path) as h:
        stop = False

        async def collect_all_the_time() -> int:
            rounds = 0
            while not stop:
                await h.service.housekeeper.once()
                rounds += 1
            return rounds

        collector = asyncio.ensure_future(collect_all_the_time())
        for i in range(25):
            (h.root / f"data{i % 3}.txt").write_text(f"version {i}\n" * 100)
            await h.service.submit(SPEC)
        await h.started(25)  # every job's workspace was materialized from its snapshot
        stop = True
        assert await collector > 0
        assert all(e.ctx.workspace.joinpath("train.py").exists() for e in h.backend.started)
        for e in h.backend.started:
            e.end(Outcome(0))
        for job in (await h.service.list(limit=50))["jobs"]:
            await h.status(job["id"], "succeeded")
            await h.service.delete(job["id"])
        freed = await h.service.housekeeper.once()
        assert freed["blobs"] > 0 and h.service.snapshots.blob_count() == 0
        assert list((tmp_path / "data" / "packs").glob("*.pack")) == []


async def test_a_timeout_is_retried_when_asked_and_a_cancel_never_is(tmp_path):
    async with harness(tmp_path) as h:
        job = await h.running(timeout=0.3, retries=1, retry_on=["timeout"], retry_backoff=0)
        await h.started(2)  # the first attempt timed out; the second runs
        assert (await h.service.get(job["id"]))["attempt"] == 2
        await h.service.cancel(job["id"], wait=1)
        cancelled = await h.status(job["id"], "cancelled")
        assert cancelled["attempt"] == 2 and len(h.backend.started) == 2
