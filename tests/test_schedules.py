"""Schedules against a real server: seconds-resolution cron expressions (a sixth field) so
that times come due within a test; each time fires once, the overlap policy, pause and
resume, bad input named by field, time zones across a daylight saving change, and restarts
with and without catch_up."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime, timezone

import pytest

from jupyter_jobs.schedules.schedules import next_times


async def schedule_jobs(api, schedule_id: str) -> list[dict]:
    return (await api.call("GET", "jobs", params={"schedule": schedule_id, "limit": "500"}))["jobs"]


async def test_a_schedule_fires_each_time_once(api, workspace):
    made = await api.call("POST", "schedules", body={
        "spec": {"command": "echo tick", "workspace": "proj"}, "cron": "* * * * * */2", "name": "ticker"},
        expect=201)
    assert made["paused"] is False and made["overlap"] == "skip" and len(made["next_runs"]) == 5
    times = [datetime.fromisoformat(t).timestamp() for t in made["next_runs"]]
    assert [b - a for a, b in zip(times, times[1:])] == [2.0] * 4 and times[0] % 2 == 0
    await asyncio.sleep(times[2] - time.time() + 0.8)  # three times have come
    jobs = await schedule_jobs(api, made["id"])
    assert len(jobs) == 3, [j["created_at"] for j in jobs]
    assert {j["spec"]["name"] for j in jobs} == {"ticker"} and {j["schedule"] for j in jobs} == {made["id"]}
    now = await api.call("GET", "schedules", made["id"])
    assert now["last_job"] == jobs[0]["id"] and now["message"] is None
    assert datetime.fromisoformat(now["next_at"]).timestamp() == times[3]
    listed = (await api.call("GET", "schedules"))["schedules"]
    assert [s["id"] for s in listed] == [made["id"]]


async def test_overlap_skips_while_the_last_job_runs_unless_allowed(api, workspace):
    body = {"spec": {"command": "sleep 2.5", "workspace": "proj"}, "cron": "* * * * * *"}
    skip = await api.call("POST", "schedules", body=body, expect=201)
    allow = await api.call("POST", "schedules", body={**body, "overlap": "allow"}, expect=201)
    await asyncio.sleep(2.2)
    assert len(await schedule_jobs(api, skip["id"])) == 1
    assert len(await schedule_jobs(api, allow["id"])) >= 2
    said = (await api.call("GET", "schedules", skip["id"]))["message"]
    assert said.startswith("skipped ") and "had not ended (overlap: skip)" in said
    for s in (skip, allow):
        await api.call("DELETE", "schedules", s["id"], expect=204)
    await api.call("GET", "schedules", skip["id"], expect=404)


async def test_pause_and_resume(api, workspace):
    made = await api.call("POST", "schedules", body={
        "spec": {"command": "true", "workspace": "proj"}, "cron": "* * * * * *"}, expect=201)
    paused = await api.call("POST", "schedules", made["id"], "pause")
    assert paused["paused"] is True and paused["next_at"] is None and paused["next_runs"] == []
    before = len(await schedule_jobs(api, made["id"]))
    await asyncio.sleep(2.2)
    assert len(await schedule_jobs(api, made["id"])) == before  # nothing while paused
    resumed = await api.call("POST", "schedules", made["id"], "resume")
    assert resumed["paused"] is False and datetime.fromisoformat(resumed["next_at"]).timestamp() > time.time() - 1
    await api.call("POST", "schedules", made["id"], "resume", expect=409)
    await asyncio.sleep(1.5)
    assert len(await schedule_jobs(api, made["id"])) > before


@pytest.mark.parametrize("change, field", [
    ({"cron": "every day"}, "cron"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"overlap": "sometimes"}, "overlap"),
    ({"spec": {"command": "", "workspace": "proj"}}, "spec.command"),
    ({"spec": {"command": "true", "workspace": "nowhere"}}, "spec.workspace"),
    ({"spec": {"command": "true", "workspace": "proj", "backend": "mainframe"}}, "spec.backend"),
    ({"every": "day"}, "every"),
])
async def test_bad_schedules_are_400_naming_the_field(api, workspace, change, field):
    body = {"spec": {"command": "true", "workspace": "proj"}, "cron": "0 3 * * *", **change}
    reply = await api.call("POST", "schedules", body=body, expect=400)
    assert field in [e["field"] for e in reply["errors"]], reply
    assert (await api.call("GET", "schedules"))["schedules"] == []


def test_time_zones_follow_daylight_saving_time():
    # 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC from 29 March 2026 (CEST)
    start = datetime(2026, 3, 27, 12, tzinfo=timezone.utc).timestamp()
    got = [datetime.fromtimestamp(t, timezone.utc).strftime("%m-%d %H:%M") for t in
           next_times("0 3 * * *", "Europe/Berlin", start, 3)]
    assert got == ["03-28 02:00", "03-29 01:00", "03-30 01:00"]


@pytest.mark.parametrize("catch_up", [False, True])
def test_times_missed_while_the_server_was_down(server_process, catch_up):
    """Two times (seconds S1 and S2 of each minute) pass while the server is down: they fire
    once at start with catch_up, not at all without; the next time is S1 or S2 again."""
    server = server_process().start()
    (server.root / "proj").mkdir()
    t0 = time.time()
    seconds = sorted({int(t0 + 4) % 60, int(t0 + 6) % 60})
    made = server.request("POST", "/jupyter-jobs/schedules", {
        "spec": {"command": "true", "workspace": "proj"}, "cron": f"* * * * * {','.join(map(str, seconds))}",
        "catch_up": catch_up})
    server.stop(signal.SIGTERM)
    time.sleep(max(0.0, t0 + 8 - time.time()))  # both times pass unseen
    server.start()
    time.sleep(1)
    after = server.request("GET", f"/jupyter-jobs/schedules/{made['id']}")
    jobs = server.request("GET", f"/jupyter-jobs/jobs?schedule={made['id']}")["jobs"]
    if catch_up:
        assert len(jobs) == 1 and after["last_job"] == jobs[0]["id"]  # once, not once per missed time
    else:
        assert jobs == [] and after["message"].startswith("skipped the time(s) missed")
    next_at = datetime.fromisoformat(after["next_at"])
    assert next_at.timestamp() > time.time() and next_at.second in seconds
