"""Where a job's files and machine come from, in the panel: a git repository (URL, ref) and an
instance type chosen in the form, the repository, ref and commit on the job's tab, an unknown
ref named beside its field, and "Copy as job file" (with the secret values it left out)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import open_panel, serious_violations

PANEL = "#jupyter-jobs-panel"
FORM = f"{PANEL} .jp-JobsForm"
TYPES = {"cpu-one": {"cpus": 1, "timeout": "10m"}}


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository outside the server's root, served by its path, with train.py on `main`."""
    path = tmp_path / "mnist"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('trained from git', flush=True)\n")
    git(path, "add", "train.py")
    git(path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "train")
    return path


@pytest.fixture
def lab_extra(tmp_path):
    config = tmp_path / "jobs_config.json"
    config.write_text(json.dumps({"JobsApp": {"instance_types": TYPES}}))
    return [f"--config={config}"]


def field_error(page, field):
    return page.wait_for_selector(f"{FORM} .jp-JobsField[data-field='{field}'] .jp-JobsField-error").inner_text()


def test_a_job_from_git_on_an_instance_type(page, lab, repo):
    commit = git(repo, "rev-parse", "HEAD")
    open_panel(page)
    page.click("text=New job")
    form = page.wait_for_selector(FORM, state="visible")
    option = page.locator(f"{FORM} [name='instanceType'] option[value='cpu-one']")
    assert "1 CPU" in option.inner_text() and "available" in option.inner_text()
    page.select_option(f"{FORM} [name='instanceType']", "cpu-one")
    assert page.input_value(f"{FORM} [name='backend']") == ""  # the type's backend unless one is chosen
    assert page.get_attribute(f"{FORM} [name='cpus']", "placeholder") == "the type's: 1"
    page.fill(f"{FORM} [name='command']", "python train.py")
    page.check(f"{FORM} [name='source'][value='git']")
    assert page.locator(f"{FORM} [name='workspace']").count() == 0
    page.fill(f"{FORM} [name='gitUrl']", str(repo))
    page.fill(f"{FORM} [name='gitRef']", "no-such-branch")
    page.click(f"{FORM} button:has-text('+ variable')")
    page.fill(f"{FORM} [aria-label='variable']", "API_TOKEN")
    page.fill(f"{FORM} [aria-label='value']", "s3cret")
    assert not serious_violations(page, FORM)

    # an unknown ref is named beside the ref field, and nothing is submitted
    form.query_selector("button[type=submit]").click()
    assert "no-such-branch" in field_error(page, "git.ref")
    assert page.locator(f"{FORM} .jp-JobsField[data-field='git.url'] .jp-JobsField-error").count() == 0
    assert lab.request("GET", "/jupyter-jobs/jobs")["jobs"] == []

    page.fill(f"{FORM} [name='gitRef']", "main")
    form.query_selector("button[type=submit]").click()
    view = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible")
    job_id = view.get_attribute("data-job-id")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}'][data-status='succeeded']", timeout=60_000)
    page.wait_for_selector(".jp-JobsView:visible .jp-JobsLog-line:has-text('trained from git')")
    job = lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")
    assert job["spec"]["git"]["commit"] == commit and job["spec"]["instance_type"] == "cpu-one"
    assert job["spec"]["resources"]["cpus"] == 1

    # the header and the details say the repository, the ref and the short commit
    header = page.inner_text(".jp-JobsView:visible .jp-JobsSource")
    assert str(repo) in header and "main" in header and commit[:7] in header and commit[:8] not in header
    page.click(".jp-JobsView:visible [role='tab'][data-tab='details']")
    facts = page.inner_text(".jp-JobsView:visible .jp-JobsFacts")
    assert "repository" in facts and commit[:7] in facts and "cpu-one" in facts

    # copy as magic names the repository at its ref and the type; as a job file, the server's YAML
    page.click(".jp-JobsView:visible button:has-text('Copy as magic')")
    page.wait_for_selector(".jp-JobsView:visible [role='status']:has-text('Copied as magic')")
    magic = page.evaluate("navigator.clipboard.readText()")
    assert f"--git {repo}@main" in magic and "--instance cpu-one" in magic and magic.endswith("-- python train.py")
    page.click(".jp-JobsView:visible button:has-text('Copy as job file')")
    status = page.wait_for_selector(".jp-JobsView:visible [role='status']:has-text('Copied as job file')")
    assert "env.API_TOKEN" in status.inner_text()  # said, to be filled in
    text = page.evaluate("navigator.clipboard.readText()")
    assert "python train.py" in text and "cpu-one" in text and str(repo) in text
    assert "s3cret" not in text and not text.lstrip().startswith("{")  # YAML, the secret left out


def test_packages_from_the_form_and_their_errors(page, lab):
    open_panel(page)
    page.click("text=New job")
    form = page.wait_for_selector(FORM, state="visible")
    assert page.locator(f"{FORM} [name='requirements']").count() == 0  # none: no input
    page.fill(f"{FORM} [name='command']", "python train.py")
    page.fill(f"{FORM} [name='workspace']", "proj")
    page.select_option(f"{FORM} [aria-label='packages from']", "file")
    page.fill(f"{FORM} [name='requirements']", "../outside.txt")
    form.query_selector("button[type=submit]").click()
    assert field_error(page, "requirements")
    assert lab.request("GET", "/jupyter-jobs/jobs")["jobs"] == []
    # auto: the workspace's requirements.txt if any (proj has none: nothing to install)
    page.select_option(f"{FORM} [aria-label='packages from']", "auto")
    form.query_selector("button[type=submit]").click()
    view = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible")
    job = lab.request("GET", f"/jupyter-jobs/jobs/{view.get_attribute('data-job-id')}")
    assert job["spec"]["requirements"] == "auto"
    page.click(".jp-JobsView:visible [role='tab'][data-tab='details']")
    assert "auto" in page.inner_text(".jp-JobsView:visible .jp-JobsFacts")
