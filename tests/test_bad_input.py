"""Bad input against a real server: each is a 4xx naming the field (never a 500, never stored
half-checked, never silently changed), and what a user configured as a secret never leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest


# -- cron expressions that never (or no longer) fire -------------------------------------------
@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 * 0", "0 0 1 1 * 0 2001"])
async def test_a_cron_expression_that_never_fires_is_a_400(api, workspace, cron):
    body = {"spec": {"command": "true", "workspace": "proj"}, "cron": cron}
    reply = await api.call("POST", "schedules", body=body, expect=400)
    assert [e["field"] for e in reply["errors"]] == ["cron"] and "matches no time" in reply["message"], reply
    assert (await api.call("GET", "schedules"))["schedules"] == []


async def test_a_schedule_without_more_times_is_listed_not_a_500(api, workspace, jobs_data: Path):
    once = await api.call("POST", "schedules", body={
        "spec": {"command": "true", "workspace": "proj"}, "cron": "0 0 29 2 * 0 2028"}, expect=201)
    assert datetime.fromisoformat(once["next_at"]).date().isoformat() == "2028-02-29"
    assert once["next_runs"] == [once["next_at"]]  # its one time, nothing after it
    over, broken = [(await api.call("POST", "schedules", body={
        "spec": {"command": "true", "workspace": "proj"}, "cron": "0 3 * * *"}, expect=201))["id"] for _ in "ab"]
    with sqlite3.connect(jobs_data / "jobs.db") as db:  # rows as an older version could leave them
        db.execute("UPDATE schedules SET cron = '0 0 31 2 *', next_at = NULL WHERE id = ?", (over,))
        db.execute("UPDATE schedules SET timezone = 'Mars/Olympus' WHERE id = ?", (broken,))
    listed = {s["id"]: s for s in (await api.call("GET", "schedules"))["schedules"]}
    assert listed[once["id"]]["next_runs"] == [once["next_at"]]
    for schedule_id, said in ((over, "matches no time"), (broken, "cannot be computed")):
        shown = listed[schedule_id]
        assert shown["next_at"] is None and shown["next_runs"] == [] and said in shown["message"], shown
        await api.call("POST", "schedules", schedule_id, "pause")
        reply = await api.call("POST", "schedules", schedule_id, "resume", expect=400)
        assert reply["errors"][0]["field"] == "cron"


# -- strings that cannot be stored, numbers JSON cannot carry ----------------------------------
@pytest.mark.parametrize(("body", "field"), [
    ({"command": "echo \ud800"}, "command"),
    ({"command": ["echo", "ok\udfff"]}, "command.1"),
    ({"command": "true", "env": {"A": "\ud800"}}, "env.A"),
    ({"command": "true", "name": "x\ud800"}, "name"),
])
async def test_a_lone_surrogate_is_a_400_naming_the_field(api, body, field):
    reply = await api.submit(body, expect=400)
    assert field in [e["field"] for e in reply["errors"]] and "surrogate" in reply["message"], reply
    assert (await api.call("GET", "jobs"))["jobs"] == []


@pytest.mark.parametrize(("change", "field"), [
    ({"spec": {"command": "echo \ud800", "workspace": "proj"}}, "spec.command"),
    ({"name": "\ud800"}, "name"),
])
async def test_a_lone_surrogate_in_a_schedule_is_a_400(api, workspace, change, field):
    body = {"spec": {"command": "true", "workspace": "proj"}, "cron": "0 3 * * *", **change}
    reply = await api.call("POST", "schedules", body=body, expect=400)
    assert field in [e["field"] for e in reply["errors"]], reply
    assert (await api.call("GET", "schedules"))["schedules"] == []


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
async def test_a_parameter_json_cannot_carry_is_a_400_naming_it(api, workspace, number):
    (workspace / "nb.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    raw = json.dumps({"notebook": "nb.ipynb", "workspace": "proj", "parameters": {"ok": 1, "lr": 0}}).replace(
        '"lr": 0', f'"lr": {number}')
    reply = await api.submit(raw, expect=400)
    assert [e["field"] for e in reply["errors"]] == ["parameters.lr"], reply
    assert "finite" in reply["message"]


# -- requirements that are pip options --------------------------------------------------------
@pytest.mark.parametrize("lines", [
    ["-e file:///tmp/evil"], ["ok==1", "-r /etc/passwd"], ["--config-settings foo=bar"], ["  -c /etc/x"],
    ["--index-url=http://example.invalid/simple"],
])
async def test_a_requirement_that_is_a_pip_option_is_a_400_naming_the_line(api, workspace, lines):
    reply = await api.submit({"command": "true", "workspace": "proj", "requirements": lines}, expect=400)
    assert reply["errors"][0]["field"] == "requirements" and lines[-1].strip() in reply["message"], reply
    assert (await api.call("GET", "jobs"))["jobs"] == []


@pytest.mark.parametrize("given", ["reqs.txt", "auto"])
async def test_a_requirements_file_with_a_pip_option_is_a_400_naming_the_line(api, workspace, given):
    (workspace / ("requirements.txt" if given == "auto" else given)).write_text(
        "# pinned\nok==1\n\n--extra-index-url http://example.invalid/simple\n")
    reply = await api.submit({"command": "true", "workspace": "proj", "requirements": given}, expect=400)
    assert reply["errors"][0]["field"] == "requirements", reply
    assert "line 4" in reply["message"] and "--extra-index-url" in reply["message"], reply


# -- a webhook URL's credentials --------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: deliveries to it are refused


HOOK = (f"http://alice:pa55word@127.0.0.1:{_closed_port()}/hooks/jobs?key=k3y-value&x=1&access_token=t0ken-value"
        "&Signature=s1g-value")
LEAKS = ("alice", "pa55word", "k3y-value", "t0ken-value", "s1g-value")


@pytest.mark.parametrize("jobs_config", [{"webhooks": [{"url": HOOK}], "webhook_attempts": 1,
                                          "webhook_backoff": 0.01}])
async def test_a_webhook_urls_credentials_are_never_shown_or_logged(api, workspace, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_jobs")
    shown = (await api.call("GET", "backends"))["webhooks"][0]["url"]
    assert shown.startswith("http://***@127.0.0.1:") and "/hooks/jobs?key=***&x=1&access_token=***" in shown, shown
    job = await api.submit({"command": "true", "workspace": "proj"})
    await api.wait(job["id"])
    deadline = time.monotonic() + 20
    while (hooks := (await api.call("GET", "backends"))["webhooks"])[0]["failed"] < 1:
        assert time.monotonic() < deadline, hooks
        await asyncio.sleep(0.05)
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up and "127.0.0.1" in gave_up[0], caplog.text
    said = caplog.text + json.dumps(hooks)
    assert not [leak for leak in LEAKS if leak in said], said


# -- environments whose build failed ----------------------------------------------------------
OLD = time.time() - 3600


@pytest.fixture
def leftovers(jobs_data: Path):
    """Before the server starts: a build folder left by a crashed build an hour ago (no
    completion marker), a fresh one, and an old one whose build still holds its lock."""
    import fcntl
    import os

    venvs = jobs_data / "envs" / "venv"
    venvs.mkdir(parents=True)
    for name in ("crashed", "fresh", "building"):
        (venvs / name / "lib").mkdir(parents=True)
        (venvs / name / "lib" / "half.py").write_text("x = 1\n")
        if name != "fresh":
            os.utime(venvs / name, (OLD, OLD))
    with open(venvs / "building.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield venvs


@pytest.mark.parametrize("jobs_config", [{"pip_index_url": "none"}])
async def test_failed_builds_leave_no_folder_and_leftovers_are_collected(leftovers, api, workspace):
    await api.call("GET", "backends")  # the service starts (housekeeping first of all)
    deadline = time.monotonic() + 20
    while (leftovers / "crashed").exists():
        assert time.monotonic() < deadline, "housekeeping left a crashed build's folder"
        await asyncio.sleep(0.05)
    assert (leftovers / "fresh").is_dir() and (leftovers / "building").is_dir()  # maybe being built now
    job = await api.submit({"command": "true", "workspace": "proj", "requirements": ["no-such-package-xyz==1.0"]})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "failed" and done["reason"] == "environment", done
    assert sorted(p.name for p in leftovers.iterdir() if p.is_dir()) == ["building", "fresh"]


@pytest.mark.parametrize("spec,field,words", [
    ({"resources": {"cpus": "abc"}}, "resources.cpus", "'abc' is not a number"),
    ({"retries": -1}, "retries", "-1 is less than 0, the least allowed"),
    ({"env": {"A": 3}}, "env.A", "3 is not text"),
    ({"resources": {"gpus": 1.5}}, "resources.gpus", "1.5 is not a whole number"),
    ({"expose": [{"port": 0, "name": "web"}]}, "expose.0.port", "0 is less than 1, the least allowed"),
    ({"cell": "print(1)"}, "cell", "a cell starts with its %%job line, as it was written"),
])
async def test_field_errors_are_in_the_products_words(api, workspace, spec, field, words):
    reply = await api.submit({"command": "true", "workspace": "proj", **spec}, expect=400)
    assert reply["errors"] == [{"field": field, "message": words}], reply
    assert "Input should" not in reply["message"]


@pytest.mark.parametrize("cron,words", [
    ("61 * * * *", "'61' is not a minute (0-59"),
    ("0 25 * * *", "'25' is not an hour (0-23"),
    ("0 0 * foo *", "'foo' is not a month (1-12 or jan-dec"),
    ("0 0 * * 9", "'9' is not a day of the week (0-7 or sun-sat"),
    ("* *", "2 fields given: a cron expression is minute hour day month weekday"),
])
async def test_cron_errors_name_the_field_in_the_products_words(api, workspace, cron, words):
    reply = await api.call("POST", "schedules", body={"spec": {"command": "true", "workspace": "proj"},
                                                      "cron": cron}, expect=400)
    (error,) = reply["errors"]
    assert error["field"] == "cron" and error["message"].startswith(words), reply
    assert "acceptable" not in error["message"] and "[" not in error["message"]  # not croniter's words
