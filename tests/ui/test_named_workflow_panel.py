"""A named workflow in the panel, in a real browser: listed in the sidebar's Workflow runs view,
its page (its spec versions, its runs, "Run with inputs": a field per input the newest version
declares, defaults filled in, a required input left empty named beside its field), a run
started from the form opening in its tab with the inputs it was given, which its job saw (in
its environment and its command)."""

from __future__ import annotations

from conftest import open_panel, serious_violations, shot
from support import log_text

PANEL = "#jupyter-jobs-panel"
SPEC = """\
name: train
inputs:
  lr: {type: string, default: "0.1", description: the learning rate}
  tag: {type: string, description: names this run}
  data: {type: dataset, default: mnist}
jobs:
  fit:
    env: {LR: "${{ inputs.lr }}", TAG: "${{ inputs.tag }}"}
    command: echo "lr=$LR tag=$TAG data=${{ inputs.data }}" && cat $JOB_DATASETS_DIR/mnist/a.txt
"""
PAGE = ".jp-JobsDefinition[data-definition='train']"
FORM = f"{PAGE} .jp-JobsDefinition-run"


def field(name):
    return f"{FORM} .jp-JobsField[data-field='inputs.{name}']"


def test_a_named_workflow_page_runs_it_with_inputs(page, lab):
    (lab.root / "proj" / "data").mkdir()
    (lab.root / "proj" / "data" / "a.txt").write_text("alpha")
    lab.request("POST", "/jupyter-jobs/datasets/mnist/versions", {"folder": "proj/data"})
    lab.request("PUT", "/jupyter-jobs/workflow-definitions/train", {"spec": SPEC, "workspace": "proj"})
    lab.request("PUT", "/jupyter-jobs/workflow-definitions/train",
                {"spec": SPEC.replace('"0.1"', '"0.01"'), "workspace": "proj"})

    # listed in the sidebar's Workflow runs view; its row opens its page
    open_panel(page)
    page.click(f"{PANEL} [role=tab]:has-text('Workflow runs')")
    row = f"{PANEL} .jp-JobsDefinitionRow[data-definition='train']"
    page.wait_for_selector(row, state="visible")
    assert "v2 · 2 versions" in page.inner_text(f"{row} .jp-JobsRow-meta")
    page.click(f"{row} button")
    page.wait_for_selector(PAGE, state="visible")
    versions = page.locator(f"{PAGE} .jp-JobsDefinition-version").evaluate_all(
        "rows => rows.map(r => r.dataset.version)")
    assert versions == ["2", "1"]
    assert "No runs yet." in page.inner_text(PAGE)

    # the form: the newest version's inputs, defaults filled in, descriptions beside them
    assert page.input_value(f"{field('lr')} input") == "0.01"
    assert page.input_value(f"{field('tag')} input") == ""
    assert page.input_value(f"{field('data')} input") == "mnist"
    assert "the learning rate" in page.inner_text(field("lr"))
    assert "required" in page.inner_text(field("tag"))
    assert page.get_attribute(f"{field('data')} input", "data-type") == "dataset"

    # a required input left empty: the server's 400 said beside it, and no run
    page.click(f"{FORM} button[type=submit]")
    said = page.wait_for_selector(f"{field('tag')} .jp-JobsField-error").inner_text()
    assert "required" in said
    assert "1 field to fix" in page.inner_text(f"{FORM} .jp-JobsError")
    assert lab.request("GET", "/jupyter-jobs/workflow-definitions/train/runs")["workflows"] == []
    assert not serious_violations(page, PAGE)

    # a run with inputs: it opens in its tab, saying which workflow, version and inputs
    page.fill(f"{field('lr')} input", "0.5")
    page.fill(f"{field('tag')} input", "from-the-ui")
    page.click(f"{FORM} button[type=submit]")
    run_view = page.wait_for_selector(".jp-JobsRun[data-run-id]", state="visible")
    run_id = run_view.get_attribute("data-run-id")
    words = page.inner_text(f".jp-JobsRun[data-run-id='{run_id}'] .jp-JobsRun-definition")
    assert "named workflow train v2" in words and "lr=0.5 · tag=from-the-ui · data=mnist" in words
    run = lab.request("GET", f"/jupyter-jobs/workflows/{run_id}")
    assert (run["definition"], run["definition_version"]) == ("train", 2)
    assert run["inputs"] == {"lr": "0.5", "tag": "from-the-ui", "data": "mnist"}
    (job,) = run["jobs"]
    assert lab.wait(job["job_id"])["status"] == "succeeded"
    assert log_text(lab.logs(job["job_id"]), "stdout") == "lr=0.5 tag=from-the-ui data=mnist\nalpha"
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run_id}'][data-status='succeeded']")

    # back on its page: the run among its runs, with its version and inputs
    page.click(".lm-TabBar-tab:has-text('Workflow train')")
    run_row = f"{PAGE} .jp-JobsDefinition-runRow[data-run-id='{run_id}']"
    page.wait_for_selector(f"{run_row}[data-status='succeeded']", timeout=10_000)
    assert page.inner_text(f"{run_row} .jp-JobsDefinition-inputs") == "lr=0.5 · tag=from-the-ui · data=mnist"
    assert "Started run" in page.inner_text(f"{PAGE} .jp-JobsDefinition-note")
    page.click(f"{PAGE} .jp-JobsDefinition-version[data-version='2'] summary")
    assert "the learning rate" in page.inner_text(f"{PAGE} .jp-JobsDefinition-version[data-version='2'] pre")
    shot(page, "named-workflow")

    # the sidebar's run row says where the run came from
    run_in_list = f"{PANEL} .jp-JobsRunRow[data-run-id='{run_id}'] .jp-JobsRunRow-definition"
    page.wait_for_selector(run_in_list, state="visible")
    assert page.inner_text(run_in_list) == "train v2 · lr=0.5 · tag=from-the-ui · data=mnist"
