"""The seams features plug into, driven through the futures backend (tests/fakes.py) beside the
real-part tests: a feature that submits through the narrow core interface, job events delivered
once and in order, a subscriber that raises not stopping the others, policies the queue obeys.
The real features (workflows, schedules, endpoints, webhooks) are tested through real servers."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from test_runner import SPEC, Harness, harness, until

from jupyter_jobs.domain.job import Job, Outcome
from jupyter_jobs.domain.spec import JobSpec
from jupyter_jobs.jobs.plugins import Event, Events, Feature, JobCore


class Recorder:
    """Hears every event: (kind, job id)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Optional[str]]] = []

    def __call__(self, event: Event) -> None:
        self.seen.append((event.kind, event.job.id if event.job else None))


class Nightly:
    """A feature the core does not know: on start it submits a job through the narrow interface,
    and it follows that job's end through the core's events."""

    def __init__(self, core: JobCore) -> None:
        self.core = core
        self.job: Optional[Job] = None
        self.ended = asyncio.Event()
        self.stopped = False
        core.events.subscribe(self._ended, ["job.ended"])

    def _ended(self, event: Event) -> None:
        if self.job is not None and event.job is not None and event.job.id == self.job.id:
            self.ended.set()

    async def start(self) -> None:
        self.job = await self.core.submit_spec(JobSpec.model_validate({**SPEC, "name": "nightly"}), origin="nightly")

    async def stop(self) -> None:
        self.stopped = True


class Hold:
    """A queue policy: jobs named `held` wait while `on`."""

    def __init__(self) -> None:
        self.on = True

    def hold(self, job: Job) -> Optional[str]:
        return "held by the test's policy" if self.on and job.spec.name == "held" else None


async def test_a_feature_submits_through_the_core_and_hears_its_job_end(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "train.py").write_text("print(1)\n")
    h = Harness(tmp_path / "root", tmp_path / "data")
    feature = Nightly(h.service)
    assert isinstance(feature, Feature)
    h.service.plug(feature)  # no constructor argument: a new feature is plugged in from outside
    await h.service.start()
    try:
        assert feature.job is not None and feature.job.origin == "nightly"
        await h.started()
        h.backend.started[0].end(Outcome(0))
        await asyncio.wait_for(feature.ended.wait(), 5)
        assert (await h.service.get(feature.job.id))["status"] == "succeeded"
    finally:
        await h.service.close()
    assert feature.stopped


async def test_job_events_come_once_each_and_in_order(tmp_path):
    async with harness(tmp_path) as h:
        seen = Recorder()
        h.service.events.subscribe(seen)
        first = await h.running()
        second = await h.running()
        h.backend.started[1].end(Outcome(0))
        h.backend.started[0].end(Outcome(3))
        await h.status(first["id"], "failed")
        await h.status(second["id"], "succeeded")
        await until(lambda: len(seen.seen) == 8)
        for job in (first, second):
            kinds = [kind for kind, job_id in seen.seen if job_id == job["id"]]
            assert kinds == ["job.queued", "job.launched", "job.started", "job.ended"]
        ends = [job_id for kind, job_id in seen.seen if kind == "job.ended"]
        assert ends == [second["id"], first["id"]]  # in the order they ended


async def test_a_subscriber_that_raises_does_not_stop_the_others(tmp_path):
    async with harness(tmp_path) as h:
        def broken(event: Event) -> None:
            raise RuntimeError("a feature's bug")

        before, after = Recorder(), Recorder()
        h.service.events.subscribe(before)
        h.service.events.subscribe(broken)
        h.service.events.subscribe(after)
        job = await h.running()
        h.backend.started[0].end(Outcome(0))
        assert (await h.status(job["id"], "succeeded"))["status"] == "succeeded"
        await until(lambda: ("job.ended", job["id"]) in after.seen)
        assert before.seen == after.seen


def test_events_reach_only_the_kinds_asked_for_and_say_who_listens():
    events, ended = Events(), Recorder()
    events.subscribe(ended, ["job.ended"])
    assert events.wants("job.ended") and not events.wants("workflow.ended")
    events.publish(Event("job.started"))
    events.publish(Event("job.ended"))
    assert ended.seen == [("job.ended", None)]


async def test_a_queue_policy_holds_a_job_until_it_lets_go(tmp_path):
    async with harness(tmp_path) as h:
        policy = Hold()
        h.service.add_policy(policy)
        held = await h.service.submit({**SPEC, "name": "held"})
        free = await h.running()  # a job the policy does not hold starts past it
        assert (await h.service.get(held["id"]))["waiting"].startswith("held by the test's policy")
        assert [e.ctx.job.id for e in h.backend.started] == [free["id"]]
        policy.on = False
        h.service.kick()
        await h.started(2)
        assert (await h.status(held["id"], "running"))["status"] == "running"


async def test_a_view_policy_and_an_info_policy_shape_the_replies(tmp_path):
    class Badge:
        def view(self, job: Job) -> None:
            job.notes = [*job.notes, "seen by the badge feature"]

        def info(self) -> dict[str, Any]:
            return {"webhooks": []}

    async with harness(tmp_path) as h:
        h.service.add_policy(Badge())
        job = await h.service.submit(SPEC)
        assert "seen by the badge feature" in (await h.service.get(job["id"]))["notes"]
        assert (await h.service.backends_info())["webhooks"] == []
