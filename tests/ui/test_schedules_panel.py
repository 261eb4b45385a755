"""Schedules and notifications in the panel, in a real browser: "Schedule this" on a job's tab
(every error beside its field), the Schedules view live (next times, the jobs it starts,
pause, resume, delete), and a notification with "Open" when a job this browser started ends,
none for a job it did not start unless the settings say every job."""

from __future__ import annotations

import json
import time
import urllib.error

import pytest

from conftest import open_job, open_panel, serious_violations, shot

PANEL = "#jupyter-jobs-panel"
FORM = f"{PANEL} .jp-JobsScheduleForm"


def submit_schedule(page, **fields):
    for name, value in fields.items():
        page.fill(f"{FORM} [name='{name}']", value)
    page.click(f"{FORM} button[type=submit]")


def field_error(page, field):
    return page.wait_for_selector(f"{FORM} .jp-JobsField[data-field='{field}'] .jp-JobsField-error").inner_text()


def schedule_jobs(lab, schedule_id):
    return lab.request("GET", f"/jupyter-jobs/jobs?schedule={schedule_id}&limit=200")["jobs"]


def test_a_job_runs_on_a_schedule_from_its_tab(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo tick", "workspace": "proj", "name": "ticker"})
    lab.wait(job["id"])
    open_job(page, job["id"])
    page.click(f".jp-JobsView[data-job-id='{job['id']}'] button:has-text('Schedule this')")
    page.wait_for_selector(FORM, state="visible")
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert page.input_value(f"{FORM} [name='timezone']") == zone
    assert page.input_value(f"{FORM} [name='name']") == "ticker"
    assert page.get_attribute(f"{FORM} [name='cron']", "placeholder") == "0 3 * * *"
    summary = page.inner_text(f"{FORM} [data-field='spec']")
    assert "echo tick" in summary and "in proj" in summary
    assert not serious_violations(page, FORM)

    # a bad expression is named beside the cron field, and nothing is created
    submit_schedule(page, cron="every day at noon")
    assert field_error(page, "cron")
    assert "1 field to fix" in page.inner_text(f"{FORM} .jp-JobsError")
    assert page.locator(f"{FORM} .jp-JobsField[data-field='timezone'] .jp-JobsField-error").count() == 0
    # a good one with a bad zone: the cron's error goes, the zone's comes
    submit_schedule(page, cron="0 3 * * *", timezone="Mars/Olympus_Mons")
    assert "Mars/Olympus_Mons" in field_error(page, "timezone")
    assert page.locator(f"{FORM} .jp-JobsField[data-field='cron'] .jp-JobsField-error").count() == 0
    page.fill(f"{FORM} [name='cron']", "15 9 * * 1-5")
    page.wait_for_selector(f"{FORM} .jp-JobsHint:has-text('at 09:15 on weekdays')")  # said in words as it is typed
    assert lab.request("GET", "/jupyter-jobs/schedules")["schedules"] == []

    # every two seconds: it shows in the Schedules view, expanded, with its next times
    submit_schedule(page, cron="* * * * * */2", timezone="UTC", name="every-2s")
    row = page.wait_for_selector(f"{PANEL} .jp-JobsSchedule", state="visible")
    schedule_id = row.get_attribute("data-schedule-id")
    row = f"{PANEL} .jp-JobsSchedule[data-schedule-id='{schedule_id}']"
    assert page.get_attribute(f"{PANEL} [role=tab]:has-text('Schedules')", "aria-selected") == "true"
    schedule = lab.request("GET", f"/jupyter-jobs/schedules/{schedule_id}")
    assert (schedule["name"], schedule["cron"], schedule["timezone"]) == ("every-2s", "* * * * * */2", "UTC")
    assert schedule["spec"]["command"] == "echo tick" and schedule["spec"]["workspace"] == "proj"
    cron = page.inner_text(f"{row} .jp-JobsSchedule-cron")
    assert "* * * * * */2" in cron and "UTC" in cron and "every 2 seconds" in cron
    assert page.get_attribute(f"{row} .jp-JobsSchedule-toggle", "aria-expanded") == "true"
    assert page.get_attribute(f"{row} .jp-JobsSchedule-next time", "datetime")
    assert page.locator(f"{row} .jp-JobsSchedule-times li").count() == 5

    # the jobs it starts appear under it, live, and open from there and from "last job"
    started = page.wait_for_selector(f"{row} .jp-JobsSchedule-detail .jp-JobsRow[data-job-id]", timeout=30_000)
    started_id = started.get_attribute("data-job-id")
    assert lab.request("GET", f"/jupyter-jobs/jobs/{started_id}")["schedule"] == schedule_id
    page.wait_for_selector(f"{row} .jp-JobsSchedule-last button", timeout=10_000)
    page.wait_for_function(f"document.querySelectorAll(\"{row} .jp-JobsSchedule-detail .jp-JobsRow\").length >= 2",
                           timeout=30_000)
    assert not serious_violations(page, PANEL)
    shot(page, "schedules")
    last = page.inner_text(f"{row} .jp-JobsSchedule-last button")
    page.click(f"{row} .jp-JobsSchedule-last button")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{last}']", state="visible")
    assert "started by schedule" in page.inner_text(f".jp-JobsView[data-job-id='{last}'] .jp-JobsView-header")
    page.click(f"{row} .jp-JobsSchedule-detail .jp-JobsRow[data-job-id='{started_id}']")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{started_id}']", state="visible")

    # paused: no next time, and no more jobs
    page.click(f"{row} button:has-text('Pause')")
    page.wait_for_selector(f"{row}[data-paused='true'] .jp-JobsBadge.jp-mod-paused")
    assert page.locator(f"{row} .jp-JobsSchedule-next time").count() == 0
    assert page.locator(f"{row} .jp-JobsSchedule-times li").count() == 0
    paused = lab.request("GET", f"/jupyter-jobs/schedules/{schedule_id}")
    assert paused["paused"] is True and paused["next_at"] is None
    count = len(schedule_jobs(lab, schedule_id))
    time.sleep(3)
    assert len(schedule_jobs(lab, schedule_id)) == count
    assert page.get_attribute(row, "data-paused") == "true"  # polled again, still paused

    # resumed: a next time again
    page.click(f"{row} button:has-text('Resume')")
    page.wait_for_selector(f"{row}[data-paused='false'] .jp-JobsSchedule-next time")
    assert lab.request("GET", f"/jupyter-jobs/schedules/{schedule_id}")["paused"] is False

    # deleted after a confirmation; cancelling it keeps the schedule
    page.click(f"{row} button:has-text('Delete')")
    page.click(".jp-Dialog button:has-text('Cancel')")
    assert page.is_visible(row)
    page.click(f"{row} button:has-text('Delete')")
    assert "every-2s" in page.inner_text(".jp-Dialog-content")
    page.click(".jp-Dialog button:has-text('Delete')")
    page.wait_for_selector(row, state="detached")
    with pytest.raises(urllib.error.HTTPError) as gone:
        lab.request("GET", f"/jupyter-jobs/schedules/{schedule_id}")
    assert gone.value.code == 404
    assert schedule_jobs(lab, schedule_id)  # the jobs it started stay
    page.wait_for_selector(f"{PANEL} .jp-JobsEmpty:has-text('No schedules yet')")

    # "Schedule…" in the job form schedules what the form describes; Cancel goes back to it
    page.click("text=New job")
    page.fill(f"{PANEL} [name='command']", "python train.py")
    page.fill(f"{PANEL} [name='workspace']", "proj")
    page.click(f"{PANEL} .jp-JobsForm button:has-text('Schedule…')")
    assert "python train.py" in page.wait_for_selector(f"{FORM} [data-field='spec']").inner_text()
    page.click(f"{FORM} button:has-text('Cancel')")
    assert page.input_value(f"{PANEL} .jp-JobsForm [name='command']") == "python train.py"


def toast(page, text, kind="success"):
    return page.wait_for_selector(f".jp-Notification-Toast-{kind}:has-text('{text}')", timeout=30_000)


def test_a_job_from_this_browser_notifies_when_it_ends(page, lab):
    open_panel(page)
    quiet = lab.request("POST", "/jupyter-jobs/jobs",
                        {"command": "echo quiet", "workspace": "proj", "name": "from-rest"})
    assert quiet["origin"] is None
    page.click("text=New job")
    page.fill(f"{PANEL} [name='name']", "notify-me")
    page.fill(f"{PANEL} [name='command']", "sleep 2; echo done")
    page.fill(f"{PANEL} [name='workspace']", "proj")
    page.click(f"{PANEL} button[type=submit]")
    job_id = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible").get_attribute("data-job-id")
    browser_id = page.evaluate("localStorage.getItem('jupyter-jobs:browser-id')")
    assert browser_id and lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["origin"] == f"browser:{browser_id}"
    page.click(".lm-DockPanel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon")  # Open must bring it back
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}']", state="detached")
    lab.wait(quiet["id"])

    done = toast(page, "notify-me")
    assert "succeeded" in done.inner_text()
    assert lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["status"] == "succeeded"
    done.query_selector("button:has-text('Open')").click()
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}'][data-status='succeeded']", state="visible")

    # a failure from this browser (a rerun of a failing job) is an error, told once; its tab,
    # which the rerun opens, is closed before it ends (while the tab shows it, it is not told)
    failing = lab.request("POST", "/jupyter-jobs/jobs", {"command": "sleep 3; exit 3", "workspace": "proj",
                                                         "name": "fails"})
    lab.wait(failing["id"])
    open_job(page, failing["id"])
    page.click(f".jp-JobsView[data-job-id='{failing['id']}'] button:has-text('Rerun')")
    page.wait_for_function("id => [...document.querySelectorAll('.jp-JobsView')]"
                           ".some(v => v.offsetParent && v.dataset.jobId !== id)", arg=failing["id"])
    page.click(".lm-DockPanel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon")
    failed = toast(page, "fails", kind="error")
    assert "failed" in failed.inner_text()
    time.sleep(4)  # more than a poll: nothing said twice
    assert page.locator(".Toastify__toast:has-text('notify-me')").count() == 0
    assert page.locator(".Toastify__toast:has-text('fails')").count() == 1
    # never a word of the jobs another client started (no origin), nor of the one that failed first
    assert page.locator(".Toastify__toast:has-text('from-rest')").count() == 0

    # with notifyAllJobs, every job: one submitted over REST now notifies; those that ended
    # before the page loaded do not
    lab.request("PUT", "/lab/api/settings/jupyter-jobs:plugin", {"raw": json.dumps({"notifyAllJobs": True})})
    page.reload()
    page.wait_for_selector(PANEL, state="attached", timeout=90_000)
    time.sleep(3)  # the settings load, the first poll: what has ended is not news
    loud = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo loud", "workspace": "proj", "name": "rest-loud"})
    assert "succeeded" in toast(page, "rest-loud").inner_text()
    assert lab.request("GET", f"/jupyter-jobs/jobs/{loud['id']}")["origin"] is None
    assert page.locator(".Toastify__toast:has-text('from-rest')").count() == 0
    assert page.locator(".Toastify__toast:has-text('notify-me')").count() == 0
