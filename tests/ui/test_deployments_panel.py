"""Deployments in the panel, in a real browser: the sidebar's Deployments view. A deployment made
from its form (the workspace the file browser's folder by default; the server's problem with a
missing port said beside the port field) gets ready with two replicas, and its Open link answers
through the stable address. Expanded: a replica opens its job tab, a new version (over REST) is
listed above the first and served once rolled out, "Serve this version" rolls back, the Scale
form says a bad limit beside its field and scales in, and Delete (asked first) stops it."""

from __future__ import annotations

import time
import urllib.request

from conftest import open_panel, serious_violations, shot
from test_datasets_panel import field_error, no_field_error, show
from test_deployments import APP, all_ready, until

PANEL = "#jupyter-jobs-panel"
VIEW = f"{PANEL} .jp-JobsDeployments"
FORM = f"{PANEL} .jp-JobsDeploymentForm"
ROW = f"{VIEW} .jp-JobsDeployment[data-deployment='web']"
SCALE = f"{ROW} .jp-JobsDeployment-scale"
EXPOSE = "8000:web:/health"


def fill(page, form, **fields):
    for name, value in fields.items():
        page.fill(f"{form} [name='{name}']", value)
    page.click(f"{form} button[type=submit]")


def listed_versions(page):
    rows = page.locator(f"{ROW} .jp-JobsDeployment-versions li")
    return rows.evaluate_all("rows => rows.map(r => r.dataset.version)")


def served(lab, version):
    """Rolled out: every replica of `version`, ready, and the deployment ready again."""
    return until(lab, "web", all_ready(2, version), timeout=90)


def test_a_deployment_made_opened_updated_rolled_back_scaled_and_deleted(page, lab):
    (lab.root / "proj" / "app.py").write_text(APP)

    # the file browser in proj: a new deployment's workspace starts there
    if not page.is_visible(".jp-DirListing"):
        page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.wait_for_selector(".jp-DirListing-item:has-text('app.py')")
    show(page, "Deployments")
    page.wait_for_selector(f"{VIEW} .jp-JobsEmpty:has-text('No deployments yet')")
    page.click(f"{VIEW} > .jp-JobsButtons button:has-text('New deployment')")
    assert page.input_value(f"{FORM} [name='workspace']") == "proj"

    # no port: the server's problem beside the port field, and nothing is made
    fill(page, FORM, name="web", command="python3 app.py", min="2", max="2")
    assert "port" in field_error(page, FORM, "spec.expose")
    assert "1 field to fix" in page.inner_text(f"{FORM} .jp-JobsError")
    assert no_field_error(page, FORM, "name")
    assert lab.request("GET", "/jupyter-jobs/deployments")["deployments"] == []
    assert not serious_violations(page, PANEL)

    # made: the form closes, the row gets ready with both replicas
    fill(page, FORM, expose=EXPOSE)
    page.wait_for_selector(FORM, state="detached")
    page.wait_for_selector(f"{ROW}[data-status='ready']", timeout=60_000)
    page.wait_for_selector(f"{ROW} .jp-JobsDeployment-replicas:has-text('2 of 2 ready')")
    assert "2–2 replicas" in page.inner_text(f"{ROW} .jp-JobsDeployment-replicas")  # noqa: RUF001 (as shown)
    assert page.inner_text(f"{ROW} .jp-JobsDeployment-version") == "v1"
    assert "req/s" in page.inner_text(f"{ROW} .jp-JobsDeployment-stats")
    made = lab.request("GET", "/jupyter-jobs/deployments/web")
    assert made["versions"][0]["spec"]["workspace"] == "proj"
    assert made["replicas"]["min"] == made["replicas"]["max"] == 2

    # its Open link: the stable address, balanced over the replicas
    link = page.locator(f"{ROW} a.jp-JobsDeployment-open[data-endpoint='web']")
    href = link.get_attribute("href")
    assert href == f"{lab.url}/{made['endpoints'][0]['path']}"
    assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener"
    with urllib.request.urlopen(href, timeout=30) as reply:
        version, job_id = reply.read().decode().split()
    assert version == "1" and job_id in {r["job_id"] for r in made["running"]}

    # expanded since made: its replicas, each opening its job tab
    assert page.get_attribute(f"{ROW} .jp-JobsSchedule-toggle", "aria-expanded") == "true"
    replicas = page.locator(f"{ROW} .jp-JobsDeployment-replicaList li[data-ready='true']")
    replicas.nth(1).wait_for()
    first = replicas.first.get_attribute("data-job-id")
    replicas.first.locator("button").click()
    page.wait_for_selector(f".jp-JobsView[data-job-id='{first}']", state="visible")
    open_panel(page)
    assert listed_versions(page) == ["1"]
    first = f"{ROW} .jp-JobsDeployment-versions li[data-version='1']"
    assert page.inner_text(f"{first} .jp-JobsDeployment-served") == "served"

    # a new version over REST: listed above the first, and the row says it once rolled out
    spec = {"command": "python3 app.py", "workspace": "proj", "env": {"APP_VERSION": "2"},
            "expose": [{"port": 8000, "name": "web", "health": "/health"}]}
    assert lab.request("PUT", "/jupyter-jobs/deployments/web", {"spec": spec})["version"] == 2
    page.wait_for_selector(f"{ROW} .jp-JobsDeployment-versions li[data-version='2']")
    assert listed_versions(page) == ["2", "1"]
    served(lab, 2)
    page.wait_for_selector(f"{ROW}[data-status='ready'][data-version='2']", timeout=10_000)
    assert page.inner_text(f"{ROW} .jp-JobsDeployment-version") == "v2"
    page.wait_for_selector(f"{ROW} .jp-JobsDeployment-replicas:has-text('2 of 2 ready')")
    assert page.locator(f"{ROW} .jp-JobsDeployment-versions li[data-version='2'] button").count() == 0

    # "Serve this version" on version 1: a rollback
    page.click(f"{ROW} .jp-JobsDeployment-versions li[data-version='1'] button:has-text('Serve this version')")
    assert until(lab, "web", lambda d: d["version"] == 1)["versions"][0]["version"] == 2
    served(lab, 1)
    page.wait_for_selector(f"{ROW}[data-status='ready'][data-version='1']", timeout=10_000)
    second = f"{ROW} .jp-JobsDeployment-versions li[data-version='2']"
    page.wait_for_selector(f"{second} button:has-text('Serve this version')")
    assert not serious_violations(page, PANEL)
    current = page.locator(f"{ROW} .jp-JobsDeployment-replicaList li[data-ready='true']").first
    opened = current.get_attribute("data-job-id")
    current.locator("button").click()
    page.wait_for_selector(f".jp-JobsView[data-job-id='{opened}'] .jp-JobsEndpoint[data-state='ready']")
    open_panel(page)
    shot(page, "deployments")

    # Scale: a max under the min is said beside the max, then in to one replica
    assert page.input_value(f"{SCALE} [name='min']") == "2"
    fill(page, SCALE, min="2", max="1")
    assert "at least min" in field_error(page, SCALE, "replicas.max")
    assert no_field_error(page, SCALE, "replicas.min")
    fill(page, SCALE, min="1", max="1")
    page.wait_for_selector(f"{SCALE} [role=status]:has-text('Scaled')")
    page.wait_for_selector(f"{ROW} .jp-JobsDeployment-replicas:has-text('1 of 1 ready')", timeout=30_000)
    assert no_field_error(page, SCALE, "replicas.max")
    assert lab.request("GET", "/jupyter-jobs/deployments/web")["replicas"]["max"] == 1

    # Delete, asked first: gone, its replica's job stopped (and kept)
    last = lab.request("GET", "/jupyter-jobs/deployments/web")["running"]
    page.click(f"{ROW} .jp-JobsDeployment-detail button:has-text('Delete')")
    assert "Delete “web”?" in page.inner_text(".jp-Dialog-content")
    page.click(".jp-Dialog button:has-text('Delete')")
    page.wait_for_selector(ROW, state="detached")
    page.wait_for_selector(f"{VIEW} .jp-JobsEmpty:has-text('No deployments yet')")
    assert lab.request("GET", "/jupyter-jobs/deployments")["deployments"] == []
    for replica in last:
        assert lab.wait(replica["job_id"], timeout=30)["status"] == "cancelled"
    time.sleep(2.5)  # polled again: still gone
    assert page.locator(ROW).count() == 0
