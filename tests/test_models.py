"""Job spec validation: every bad field is named."""

import pytest

from jupyter_jobs.domain.spec import REDACTED, JobSpec, parse_memory, parse_spec, read_spec
from jupyter_jobs.domain.errors import FieldError, SpecError
from jupyter_jobs.domain.status import JobStatus


def fields(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return {e.field: e.message for e in info.value.errors}


def test_minimal_spec_defaults():
    spec = parse_spec({"command": "python train.py"})
    assert spec.workspace == "" and spec.backend is None and spec.resources.gpus == 0
    assert spec.argv() == ["/bin/sh", "-c", "python train.py"]
    assert parse_spec({"command": ["python", "-c", "print(1)"]}).argv() == ["python", "-c", "print(1)"]


def test_full_spec_round_trip():
    data = {
        "command": ["python", "train.py"], "workspace": "experiments/mnist", "backend": "docker",
        "image": "pytorch", "name": "n", "project": "p", "description": "d", "tags": ["a", "b"],
        "env": {"EPOCHS": "2"}, "resources": {"gpus": 2, "cpus": 1.5, "memory": "2g"}, "timeout": 3600,
    }
    spec = parse_spec(data)
    assert spec.model_dump() == {**data, "resources": {"gpus": 2, "cpus": 1.5, "nodes": 1, "memory": "2g"},
                                 "timeout": 3600.0, "slurm": None, "retries": 0,
                                 "retry_on": ["lost", "backend_error"], "retry_backoff": 10.0,
                                 "notebook": None, "parameters": {}, "kernel": None, "instance_type": None,
                                 "git": None, "requirements": None, "datasets": [], "models": [], "outputs": {},
                                 "expose": [],
                                 "cell": None, "priority": 0, "preemptible": False, "live": False}
    assert spec.resources.memory_bytes == 2 * 1024**3


def test_each_bad_field_is_named():
    errors = fields({
        "command": 5, "workspace": "../up", "env": {"1BAD": "x"}, "resources": {"gpus": -1, "memory": "lots",
                                                                                "cpus": 0},
        "timeout": "soon", "tags": [""], "surprise": True,
    })
    assert set(errors) == {"command", "workspace", "env", "resources.gpus", "resources.memory",
                           "resources.cpus", "timeout", "tags", "surprise"}
    assert "string" in errors["command"] and "1BAD" in errors["env"] and errors["surprise"] == "unknown field"


@pytest.mark.parametrize("body", [None, [], "python x.py", 3])
def test_body_must_be_an_object(body):
    assert fields(body) == {"body": "the job spec must be a JSON object"}


def test_missing_and_empty_command():
    assert "command" in fields({})
    assert "command" in fields({"command": "   "})
    assert "command" in fields({"command": []})


@pytest.mark.parametrize("workspace", ["/etc", "a/../../b", "..", "x\x00y"])
def test_workspace_must_stay_relative(workspace):
    assert "workspace" in fields({"command": "true", "workspace": workspace})


@pytest.mark.parametrize("text,seconds", [(90, 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1.5h", 5400.0)])
def test_timeouts(text, seconds):
    assert parse_spec({"command": "true", "timeout": text}).timeout == seconds


@pytest.mark.parametrize("text,size", [("512m", 512 << 20), ("2g", 2 << 30), ("1.5GiB", 3 << 29), (1 << 30, 1 << 30)])
def test_memory_sizes(text, size):
    assert parse_memory(text) == size


def test_secret_env_values_are_never_echoed():
    spec = JobSpec(command="true", env={"API_TOKEN": "s3cret", "DB_PASSWORD": "pw", "EPOCHS": "3"})
    public = spec.public()["env"]
    assert public == {"API_TOKEN": REDACTED, "DB_PASSWORD": REDACTED, "EPOCHS": "3"}
    assert spec.env["API_TOKEN"] == "s3cret"  # kept for the job itself


def test_terminal_statuses():
    assert [s.value for s in JobStatus if s.is_terminal()] == ["succeeded", "failed", "cancelled", "skipped"]


@pytest.mark.parametrize("resources,field", [
    ({"memory": ["2g"]}, "resources.memory"), ({"memory": {"size": 1}}, "resources.memory"),
    ({"memory": 1e999}, "resources.memory"), ({"memory": float("nan")}, "resources.memory"),
    ({"cpus": float("inf")}, "resources.cpus"),
])
def test_odd_resource_values_are_field_errors(resources, field):
    assert field in fields({"command": "true", "resources": resources})


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), [], {"s": 1}, True, "-5m", 10**12])
def test_odd_timeouts_are_field_errors(timeout):
    assert "timeout" in fields({"command": "true", "timeout": timeout})


@pytest.mark.parametrize("slurm", [{"partition": "gpu\ntouch /tmp/x #"}, {"sbatch_args": ["--x=1\nrm -rf /"]},
                                   {"qos": "a\rb"}])
def test_slurm_fields_stay_on_one_line(slurm):
    assert any(f.startswith("slurm") for f in fields({"command": "true", "slurm": slurm}))


def test_a_bad_spec_is_read_with_its_failing_fields_left_out():
    body = {"command": ["ok", 1], "workspace": "w", "resources": {"gpus": 2, "memory": "lots"}, "colour": "x"}
    rest, error = read_spec(body)
    assert error is not None and {e.field for e in error.errors} == {"command", "resources.memory", "colour"}
    assert rest is not None and (rest.command, rest.workspace, rest.resources.gpus) == ("true", "w", 2)
    assert rest.resources.memory is None and body["resources"] == {"gpus": 2, "memory": "lots"}  # untouched
    assert read_spec({"command": "true"})[1] is None and read_spec([])[0] is None


def test_one_error_per_field():
    error = SpecError.one("a", "x").plus(SpecError([FieldError(field="a", message="y"),
                                                    FieldError(field="b", message="z"),
                                                    FieldError(field="b", message="w")]))
    assert [(e.field, e.message) for e in error.errors] == [("a", "x"), ("b", "z; w")]
