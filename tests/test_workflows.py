"""Workflow specs, checked and expanded (pure: no server). The runs themselves are tested
against real servers in test_workflow_runs.py."""

from __future__ import annotations

import pytest

from jupyter_jobs.domain.errors import SpecError
from jupyter_jobs.workflows.spec import fill_outputs, plan

MNIST = """\
name: mnist
defaults:
  backend: local
  env: {SEED: "1"}
  resources: {gpus: 0}
jobs:
  prepare:
    command: python prepare.py
  train:
    needs: [prepare]
    matrix: {lr: [0.1, 0.01], batch: [32, 64]}
    command: python train.py --lr ${{ matrix.lr }} --batch ${{ matrix.batch }}
    env: {DATA: "${{ needs.prepare.outputs.path }}"}
  report:
    needs: train
    command: python report.py
"""


def errors(spec):
    with pytest.raises(SpecError) as caught:
        plan(spec)
    return {e.field: e.message for e in caught.value.errors}


def test_a_workflow_expands_into_its_jobs_in_order():
    result = plan(MNIST)
    assert result.name == "mnist"
    assert [n.key for n in result.nodes] == [
        "prepare", "train[lr=0.1,batch=32]", "train[lr=0.1,batch=64]", "train[lr=0.01,batch=32]",
        "train[lr=0.01,batch=64]", "report"]
    train = result.nodes[3]
    assert train.matrix == {"lr": 0.01, "batch": 32} and train.needs == ["prepare"]
    assert train.spec["command"] == "python train.py --lr 0.01 --batch 32"
    assert train.spec["env"] == {"SEED": "1", "DATA": "${{ needs.prepare.outputs.path }}", "MATRIX_LR": "0.01",
                                 "MATRIX_BATCH": "32"}
    assert train.spec["backend"] == "local" and train.spec["name"] == "train[lr=0.01,batch=32]"
    assert train.folder == "train/lr=0.01,batch=32" and result.nodes[0].folder == "prepare"
    assert result.nodes[-1].needs == ["train"]
    filled = fill_outputs(train.spec, {"prepare": {"path": "/data/x", "n": 3}})
    assert filled["env"]["DATA"] == "/data/x"
    assert fill_outputs({"command": "echo ${{ needs.p.outputs.n }}"}, {"p": {"n": 3}})["command"] == "echo 3"


def test_json_objects_are_workflows_too():
    result = plan({"jobs": {"a": {"command": "true"}, "b": {"command": ["echo", "b"], "needs": ["a"]}}})
    assert [n.key for n in result.nodes] == ["a", "b"] and result.name == "workflow"


def test_every_problem_at_once_with_its_job_field_and_line():
    found = errors("""\
name: broken
colour: red
defaults:
  resources: {memory: lots}
jobs:
  a:
    command: echo ${{ matrix.x }}
    neds: [b]
  b:
    needs: [a, ghost]
    command: echo ${{ needs.a.outputs.y }} ${{ needs.c.outputs.z }}
  c:
    needs: [c]
    command: true
  d:
    matrix: {n: [1, 2]}
    timeout: soon
    command: echo
""")
    assert found["colour"] == "unknown field (line 2)"
    assert found["defaults.resources.memory"].endswith("(line 4)") and "lots" in found["defaults.resources.memory"]
    assert found["jobs.a.neds"] == "unknown field (line 8)"
    assert "undefined reference ${{ matrix.x }}" in found["jobs.a"] and "(line 6)" in found["jobs.a"]
    assert found["jobs.b.needs"] == "no job 'ghost' in this workflow (line 10)"
    assert "undefined reference ${{ needs.c.outputs.z }}" in found["jobs.b"]
    assert found["jobs.c.needs"] == "a job cannot need itself (line 13)"
    assert "soon" in found["jobs.d.timeout"] and found["jobs.d.timeout"].endswith("(line 17)")


def test_cycles_and_big_matrices_are_refused():
    found = errors({"jobs": {"a": {"command": "true", "needs": "c"}, "b": {"command": "true", "needs": "a"},
                             "c": {"command": "true", "needs": "b"}}})
    assert "a cycle: " in found["jobs.a.needs"] and "a -> c -> b -> a" in found["jobs.a.needs"]
    found = errors({"jobs": {"sweep": {"command": "true", "matrix": {"x": list(range(40)), "y": list(range(30))}}}})
    assert found["jobs.sweep.matrix"] == "1,200 combinations; at most 1,000"
    found = errors({"jobs": {"s": {"command": "true", "matrix": {"bad-name": [1]}, "max_parallel": 0}}})
    assert "jobs.s.matrix.bad-name" in found and found["jobs.s.max_parallel"] == "must be a positive integer"
    assert errors("jobs: [a, b")["spec"].startswith("not valid YAML")
    assert errors({"jobs": {}})["jobs"].startswith("a workflow needs `jobs`")


def test_a_thousand_combinations_expand_at_once():
    result = plan({"jobs": {"s": {"command": "echo ${{ matrix.x }} ${{ matrix.y }}",
                                  "matrix": {"x": list(range(40)), "y": list(range(25))}}}})
    assert len(result.nodes) == 1000 and result.nodes[-1].spec["command"] == "echo 39 24"


def test_a_run_may_name_the_metric_that_marks_its_best_job():
    flow = {"best": "loss:min", "jobs": {"train": {"command": "true", "matrix": {"lr": [0.1, 0.3]}}}}
    assert len(plan(flow).nodes) == 2
    for bad in ("loss", "loss:lowest", 3):
        with pytest.raises(SpecError) as caught:
            plan({**flow, "best": bad})
        assert [e.field for e in caught.value.errors] == ["best"]
        assert "NAME:min or NAME:max" in caught.value.errors[0].message
