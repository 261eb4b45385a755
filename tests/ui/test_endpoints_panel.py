"""Job endpoints in the panel, in a real browser: a job that exposes a port lists it in its tab
with its state (waiting, then ready, gone once the job ends) and a link that opens the job's
web app through the Jupyter server; the sidebar row marks a job that serves one; the form's
"Expose ports" field writes the spec's `expose` and shows the server's 400 beside it."""

from __future__ import annotations

import uuid

from conftest import open_job, open_panel, serious_violations, shot

SERVE = "exec python3 -m http.server $PORT_WEB --bind 127.0.0.1"


def site(lab, folder: str) -> str:
    """A workspace whose index.html says a text no other page has; that text."""
    marker = f"served by the job {uuid.uuid4().hex}"
    (lab.root / folder).mkdir()
    (lab.root / folder / "index.html").write_text(f"<!doctype html><title>job site</title><h1>{marker}</h1>\n")
    return marker


def endpoint(job_id: str, name: str) -> str:
    return f".jp-JobsView[data-job-id='{job_id}'] .jp-JobsEndpoint[data-endpoint='{name}']"


def test_an_endpoint_opens_from_the_job_tab_and_is_gone_when_the_job_ends(page, lab):
    marker = site(lab, "site")
    job = lab.request("POST", "/jupyter-jobs/jobs", {"name": "web-app", "workspace": "site", "command": SERVE,
                                                      "expose": [{"port": 8000, "name": "web"}]})
    job_id = job["id"]
    open_job(page, job_id)
    row = endpoint(job_id, "web")
    first = page.wait_for_selector(row).get_attribute("data-state")
    assert first in ("waiting", "ready"), first
    page.wait_for_selector(f"{row}[data-state='ready']", timeout=30_000)  # followed live, no reload
    pill = page.locator(f"{row} .jp-JobsEndpoint-state")
    assert pill.inner_text() == "ready" and pill.get_attribute("data-state") == "ready"
    path = "/" + lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["endpoints"][0]["path"]
    assert path.startswith("/jupyter-jobs/ep/")  # its own address: the key in it is its credential
    link = page.locator(f"{row} a.jp-JobsEndpoint-open")
    assert link.get_attribute("href") == lab.url + path
    assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener noreferrer"
    port = lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["endpoints"][0]["port"]
    assert f"port {port}" in page.inner_text(row)  # the port the local backend chose ($PORT_WEB)

    # the sidebar's row marks a running job that serves a ready endpoint
    open_panel(page)
    mark = page.wait_for_selector(f".jp-JobsRow[data-job-id='{job_id}'] .jp-JobsRow-endpoints")
    assert mark.get_attribute("title") == "serves 1 endpoint"
    assert serious_violations(page, f".jp-JobsView[data-job-id='{job_id}'] .jp-JobsEndpoints") == []
    shot(page, "endpoints")

    page.click(f"{row} button:has-text('Copy URL')")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}'] [role='status']:has-text('Copied the URL of web')")
    assert page.evaluate("navigator.clipboard.readText()") == lab.url + path
    page.click(f".jp-JobsView[data-job-id='{job_id}'] button:has-text('Copy as magic')")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}'] [role='status']:has-text('Copied as magic')")
    assert "--expose 8000:web " in page.evaluate("navigator.clipboard.readText()")

    with page.context.expect_page() as opened:
        page.click(f"{row} a:has-text('Open')")
    app = opened.value
    app.wait_for_load_state()
    assert marker in app.inner_text("body")  # through the proxy, sandboxed
    assert app.url == lab.url + path
    assert app.evaluate("window.origin") == "null", "the job's page runs in an opaque origin, not Jupyter's"
    app.close()

    page.click(f".jp-JobsView[data-job-id='{job_id}'] button:has-text('Cancel')")
    page.wait_for_selector(f"{row}[data-state='gone']", timeout=30_000)
    assert page.locator(f"{row} .jp-JobsEndpoint-state").inner_text() == "gone"
    gone = page.locator(f"{row} .jp-JobsEndpoint-open")
    assert gone.get_attribute("aria-disabled") == "true" and gone.get_attribute("href") is None
    assert page.locator(f"{row} button:has-text('Copy URL')").is_disabled()
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{job_id}'][data-status='cancelled']")
    assert page.locator(f".jp-JobsRow[data-job-id='{job_id}'] .jp-JobsRow-endpoints").count() == 0


def test_the_form_exposes_ports_and_shows_what_is_wrong_beside_the_field(page, lab):
    site(lab, "site")
    open_panel(page)
    page.click("text=New job")
    form = "#jupyter-jobs-panel .jp-JobsForm"
    page.fill(f"{form} [name='name']", "form-web")
    page.fill(f"{form} [name='command']", SERVE)
    page.fill(f"{form} [name='workspace']", "site")
    field = f"{form} .jp-JobsField[data-field='expose']"
    page.fill(f"{field} textarea", "web")  # not PORT:NAME: the form says so, nothing is sent
    page.click(f"{form} button[type=submit]")
    assert "PORT:NAME" in page.wait_for_selector(f"{field} .jp-JobsField-error").inner_text()

    page.fill(f"{field} textarea", "8000:Bad_Name")  # the server's rule: its 400 names expose.0.name
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f"{field} .jp-JobsField-error:has-text('a-z, 0-9')")
    assert page.inner_text(f"{field} .jp-JobsField-error").startswith("entry 1: ")
    assert "1 field to fix" in page.inner_text(f"{form} .jp-JobsError")

    page.fill(f"{field} textarea", "8000:web\n9000:docs:/healthz")
    page.click(f"{form} button[type=submit]")
    view = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible")
    job_id = view.get_attribute("data-job-id")
    job = lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")
    assert [(e["port"], e["name"], e["health"]) for e in job["spec"]["expose"]] == [
        (8000, "web", None), (9000, "docs", "/healthz")]
    page.wait_for_selector(f"{endpoint(job_id, 'web')}[data-state='ready']", timeout=30_000)
    docs = page.wait_for_selector(endpoint(job_id, "docs"))  # nothing answers on its port
    assert docs.get_attribute("data-state") == "waiting" and "health /healthz" in docs.inner_text()
    assert page.locator(f"{endpoint(job_id, 'docs')} .jp-JobsEndpoint-open").get_attribute("aria-disabled") == "true"

    page.click(f".jp-JobsView[data-job-id='{job_id}'] button:has-text('Edit and resubmit')")  # the form keeps them
    page.wait_for_selector(form, state="visible")
    assert page.input_value(f"{field} textarea") == "8000:web\n9000:docs:/healthz"
    page.click(f"{form} button:has-text('Cancel')")
    lab.request("POST", f"/jupyter-jobs/jobs/{job_id}/cancel")
    page.wait_for_selector(f"{endpoint(job_id, 'docs')}[data-state='gone']", timeout=30_000)
    page.wait_for_selector(f"{endpoint(job_id, 'web')}[data-state='gone']")
