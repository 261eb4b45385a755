"""The OpenAPI document of the REST API, built from the models so it cannot drift.

`python -m jupyter_jobs.server.openapi > jupyter_jobs/openapi.json` writes the copy that ships in
the package and is served at /jupyter-jobs/openapi.json; a test checks the two agree.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .._version import __version__
from ..domain.errors import FieldError
from ..domain.job import Job
from ..domain.status import JobStatus
from ..domain.spec import JobSpec
from ..domain.replies import (
    ArtifactList,
    BackendsReply,
    HostReply,
    JobEvent,
    JobPage,
    LogChunk,
    LogEnd,
    MetricsPage,
    MetricsSummary,
)
from ..domain.replies import EnvironmentList, Schedule, ScheduleInput, SchedulePage, WorkflowPage, WorkflowRun
from ..domain.replies import DatasetInput, DatasetList, DatasetMade, DatasetVersionDetail, DatasetVersions
from ..domain.replies import ModelInput, ModelList, ModelMade, ModelVersionDetail, ModelVersions, JobVersions
from ..domain.replies import Deployment, DeploymentInput, DeploymentList
from ..domain.replies import WorkflowDefinition, WorkflowDefinitionHistory, WorkflowDefinitionInput
from ..domain.replies import WorkflowDefinitionList, WorkflowRunInput, WorkflowSubmission


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "error: a message, and for a bad spec each bad field")
_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ORIGIN = {"name": "X-Jupyter-Jobs-Origin", "in": "header", "required": False, "schema": {"type": "string"},
           "description": "kernel:<id> or browser:<id>: who submits (the panel notifies that browser)"}
_SCHEDULE = {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, responses: dict[str, Any], params: list | None = None, body: Any = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, "403": _ERROR}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _add(schemas: dict[str, Any], model: type[BaseModel], mode: str = "serialization", suffix: str = "") -> None:
    """A model's schema and those it refers to; `suffix` keeps input shapes apart from replies."""
    template = "#/components/schemas/{model}" + suffix
    schema = model.model_json_schema(ref_template=template, mode=mode)  # type: ignore[arg-type]
    schemas.update({name + suffix: sub for name, sub in schema.pop("$defs", {}).items()})
    schemas[model.__name__ + suffix] = schema


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Job, FieldError, BackendsReply, JobEvent, ArtifactList, LogChunk, LogEnd, JobPage, MetricsPage,
                  MetricsSummary, WorkflowRun, WorkflowPage, Schedule, SchedulePage, EnvironmentList, HostReply,
                  DatasetList, DatasetVersions, DatasetMade, DatasetVersionDetail, ModelList, ModelVersions,
                  ModelMade, ModelVersionDetail, WorkflowDefinition, WorkflowDefinitionList,
                  WorkflowDefinitionHistory, JobVersions, Deployment, DeploymentList):
        _add(schemas, model)
    _add(schemas, WorkflowSubmission, "validation")
    _add(schemas, ScheduleInput, "validation")
    _add(schemas, DatasetInput, "validation")
    _add(schemas, ModelInput, "validation")
    _add(schemas, WorkflowDefinitionInput, "validation")
    _add(schemas, WorkflowRunInput, "validation")
    _add(schemas, DeploymentInput, "validation")
    _add(schemas, JobSpec, "validation", "Input")  # what a client may send (durations as strings...)
    spec_in = schemas["JobSpecInput"]["properties"]
    spec_in["timeout"] = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}, {"type": "null"}],
                          "description": "seconds, or a duration such as '90s', '30m', '2h', '1d'"}
    schemas["Job"]["properties"]["name"] = {"anyOf": [{"type": "string"}, {"type": "null"}],
                                            "description": "spec.name, for convenience"}
    schemas["Job"]["properties"]["events"] = {"type": "array", "items": _ref("JobEvent"),
                                              "description": "status changes (GET /jobs/{id} only)"}
    schemas["Job"]["properties"]["metrics"] = {**_ref("MetricsSummary"),
                                               "description": "last/min/max per series (GET /jobs/{id} only)"}
    schemas["JobPage"]["properties"]["jobs"] = {"type": "array", "items": _ref("Job")}
    schemas["Error"] = {
        "type": "object", "required": ["message"],
        "properties": {"message": {"type": "string"}, "errors": {"type": "array", "items": _ref("FieldError")}},
    }
    return schemas


def build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "jupyter_jobs", "version": __version__,
                 "description": "Jobs: a workspace snapshot + a command + resources, run by a backend."},
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "'token <Jupyter server token>'"}},
        },
        "security": [{"token": []}],
    }


def _paths() -> dict[str, Any]:
    """Every path, by feature (one function each)."""
    return {**_service_paths(), **_job_paths(), **_job_output_paths(), **_workflow_paths(), **_schedule_paths(),
            **_dataset_paths(), **_definition_paths(), **_deployment_paths()}


def _service_paths() -> dict[str, Any]:
    return {
        "/jupyter-jobs/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"},
                                                                                "OpenAPI 3.1")})},
        "/jupyter-jobs/backends": {"get": _op("Backends, their availability and capabilities", {
            "200": _json(_ref("BackendsReply"), "backends and the GPU inventory")})},
        "/jupyter-jobs/host": {"get": _op("The host's GPUs: holders, utilization, the queue across users, use", {
            "200": _json(_ref("HostReply"), "other users' job ids only for a host admin (JobsApp.host_admins)")})},
        "/jupyter-jobs/environments": {"get": _op("Environments built from requirements", {
            "200": _json(_ref("EnvironmentList"), "each with its size and last use")})},
    }


def _job_paths() -> dict[str, Any]:
    statuses = [s.value for s in JobStatus]
    job = _json(_ref("Job"), "the job")
    return {
        "/jupyter-jobs/jobs": {
            "get": _op("Jobs, newest first", {"200": _json(_ref("JobPage"), "a page of jobs"), "400": _ERROR}, [
                _query("status", {"type": "string"}, f"comma-separated: {', '.join(statuses)}"),
                _query("project", {"type": "string"}, "only this project"),
                _query("q", {"type": "string", "maxLength": 200},
                       "search: text in the name, command, id or a tag (case-insensitive; % and _ match themselves)"),
                _query("tag", {"type": "string", "maxLength": 100}, "only jobs with exactly this tag"),
                _query("workflow", {"type": "string", "maxLength": 100}, "only the jobs of this workflow run"),
                _query("schedule", {"type": "string", "maxLength": 100}, "only the jobs this schedule started"),
                _query("origin", {"type": "string"}, "comma-separated submitters (kernel:<id>, browser:<id>): "
                       "only the jobs they started"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                _query("cursor", {"type": "integer", "minimum": 0}, "next_cursor of the previous page"),
            ]),
            "post": _op("Submit a job; with follow=true, also stream its log (one request for both)", {
                "201": {"description": "the job; with follow=true, NDJSON: {job}, its log chunks, then a LogEnd",
                        "content": {**job["content"], "application/x-ndjson": {"schema": {"anyOf": [
                            {"type": "object", "required": ["job"], "properties": {"job": _ref("Job")}},
                            _ref("LogChunk"), _ref("LogEnd")]}}}},
                "400": _ERROR}, [_ORIGIN, _query("follow", {"type": "boolean"},
                                                 "stream the job's log in the reply until the job ends")],
                body=_ref("JobSpecInput")),
        },
        "/jupyter-jobs/jobs/{job_id}": {
            "get": _op("One job, with its status changes", {"200": job, "404": _ERROR}, [_ID]),
            "delete": _op("Delete a finished job, its logs and artifacts",
                          {"204": {"description": "deleted"}, "404": _ERROR, "409": _ERROR}, [_ID]),
        },
        "/jupyter-jobs/jobs/{job_id}/cancel": {"post": _op("Cancel a queued or running job", {
            "200": job, "404": _ERROR, "409": _ERROR}, [_ID])},
        "/jupyter-jobs/jobs/{job_id}/spec": {"get": _op("The job's spec as a job file anyone can submit again", {
            "200": {"description": "YAML (default) or JSON; secret env values left out, named in the "
                    "X-Jupyter-Jobs-Left-Out header",
                    "content": {"application/yaml": {"schema": {"type": "string"}},
                                "application/json": {"schema": _ref("JobSpecInput")}}},
            "400": _ERROR, "404": _ERROR}, [_ID, _query("format", {"type": "string", "enum": ["yaml", "json"]},
                                                        "yaml (default) or json")])},
        "/jupyter-jobs/jobs/{job_id}/rerun": {"post": _op("Run the same spec on a new snapshot", {
            "201": job, "404": _ERROR}, [_ID])},
    }


def _job_output_paths() -> dict[str, Any]:
    """What a job leaves: its log, its metrics, its artifacts."""
    return {
        "/jupyter-jobs/jobs/{job_id}/logs": {"get": _op("The job's output as NDJSON", {
            "200": {"description": "log chunks; with follow=true the last line is a LogEnd",
                    "content": {"application/x-ndjson": {"schema": {"anyOf": [_ref("LogChunk"),
                                                                              _ref("LogEnd")]}}}},
            "400": _ERROR, "404": _ERROR}, [
            _ID, _query("offset", {"type": "integer", "minimum": 0}, "byte offset to start from"),
            _query("follow", {"type": "boolean"}, "stay open until the job ends")])},
        "/jupyter-jobs/jobs/{job_id}/metrics": {"get": _op("The job's series: its own metrics and its telemetry", {
            "200": {"description": "a MetricsPage; with follow=true, NDJSON pages as points arrive, then a LogEnd",
                    "content": {"application/json": {"schema": _ref("MetricsPage")},
                                "application/x-ndjson": {"schema": {"anyOf": [_ref("MetricsPage"),
                                                                              _ref("LogEnd")]}}}},
            "400": _ERROR, "404": _ERROR}, [
            _ID, _query("names", {"type": "string"}, "comma-separated series names (default: all)"),
            _query("since", {"type": "string"}, "a previous page's `next`: what comes after it"),
            _query("follow", {"type": "boolean"}, "stay open until the job ends")])},
        "/jupyter-jobs/jobs/{job_id}/artifacts": {"get": _op("Files the job wrote to its artifacts folder", {
            "200": _json(_ref("ArtifactList"), "artifacts"),
            "404": _ERROR}, [_ID])},
        "/jupyter-jobs/jobs/{job_id}/artifacts/{path}": {"get": _op("Download one artifact", {
            "200": {"description": "the file", "content": {"application/octet-stream": {}}},
            "404": _ERROR}, [_ID, {"name": "path", "in": "path", "required": True,
                                   "schema": {"type": "string"}}])},
        "/jupyter-jobs/jobs/{job_id}/artifacts.zip": {"get": _op("All artifacts as one zip, streamed", {
            "200": {"description": "a zip of the artifacts (those under `prefix`)",
                    "content": {"application/zip": {}}},
            "404": _ERROR}, [_ID, {"name": "prefix", "in": "query", "required": False,
                                   "schema": {"type": "string"}}])},
    }


def _workflow_paths() -> dict[str, Any]:
    return {
        "/jupyter-jobs/workflows": {
            "get": _op("Workflow runs, newest first", {"200": _json(_ref("WorkflowPage"), "a page of runs"),
                                                       "400": _ERROR}, [
                _query("status", {"type": "string"}, "comma-separated run statuses"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                _query("cursor", {"type": "integer", "minimum": 0}, "next_cursor of the previous page")]),
            "post": _op("Submit a workflow: every job is checked first, then recorded",
                        {"201": _json(_ref("WorkflowRun"), "the run"), "400": _ERROR},
                        body=_ref("WorkflowSubmission")),
        },
        "/jupyter-jobs/workflows/{run_id}": {"get": _op("One workflow run with its jobs", {
            "200": _json(_ref("WorkflowRun"), "the run"), "404": _ERROR}, [_RUN])},
        "/jupyter-jobs/workflows/{run_id}/cancel": {"post": _op("Cancel every job of the run that has not ended", {
            "200": _json(_ref("WorkflowRun"), "the run"), "404": _ERROR, "409": _ERROR}, [_RUN])},
        "/jupyter-jobs/workflows/{run_id}/rerun": {"post": _op("Run its failed, cancelled and skipped jobs again", {
            "200": _json(_ref("WorkflowRun"), "the run"), "404": _ERROR, "409": _ERROR}, [_RUN])},
    }


def _schedule_paths() -> dict[str, Any]:
    return {
        "/jupyter-jobs/schedules": {
            "get": _op("Schedules, newest first", {"200": _json(_ref("SchedulePage"), "a page of schedules"),
                                                   "400": _ERROR}, [
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                _query("cursor", {"type": "integer", "minimum": 0}, "next_cursor of the previous page")]),
            "post": _op("Create a schedule: a job spec on a cron expression in a time zone",
                        {"201": _json(_ref("Schedule"), "the schedule"), "400": _ERROR}, body=_ref("ScheduleInput")),
        },
        "/jupyter-jobs/schedules/{schedule_id}": {
            "get": _op("One schedule, with its next five times", {
                "200": _json(_ref("Schedule"), "the schedule"), "404": _ERROR}, [_SCHEDULE]),
            "delete": _op("Delete a schedule (the jobs it started stay)", {
                "204": {"description": "deleted"}, "404": _ERROR}, [_SCHEDULE]),
        },
        "/jupyter-jobs/schedules/{schedule_id}/pause": {"post": _op("Stop firing until resumed", {
            "200": _json(_ref("Schedule"), "the schedule"), "404": _ERROR}, [_SCHEDULE])},
        "/jupyter-jobs/schedules/{schedule_id}/resume": {"post": _op("Fire again, from the next time on", {
            "200": _json(_ref("Schedule"), "the schedule"), "404": _ERROR, "409": _ERROR}, [_SCHEDULE])},
    }


_DATASET = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "1, 2, ..."}


def _dataset_paths() -> dict[str, Any]:
    job = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {"/jupyter-jobs/jobs/{job_id}/versions": {"get": _op(
        "The dataset and model versions a job made (its outputs, its artifacts saved or registered)", {
            "200": _json(_ref("JobVersions"), "its versions"), "404": _ERROR}, [job])}}
    for kind, model in (("datasets", "Dataset"), ("models", "Model")):
        paths.update({
            f"/jupyter-jobs/{kind}": {"get": _op(f"{model}s, each with its newest version", {
                "200": _json(_ref(f"{model}List"), f"the {kind}")})},
            f"/jupyter-jobs/{kind}/{{name}}": {"get": _op(f"A {model.lower()}'s live versions, newest first", {
                "200": _json(_ref(f"{model}Versions"), "its versions"), "404": _ERROR}, [_DATASET])},
            f"/jupyter-jobs/{kind}/{{name}}/versions": {"post": _op(
                "A new version from a folder under the root or a finished job's artifacts (stored by content)",
                {"201": _json(_ref(f"{model}Made"), "the version"), "400": _ERROR, "404": _ERROR, "409": _ERROR},
                [_DATASET], body=_ref(f"{model}Input"))},
            f"/jupyter-jobs/{kind}/{{name}}/versions/{{version}}": {
                "get": _op("A version with the jobs that read it", {
                    "200": _json(_ref(f"{model}VersionDetail"), "the version"), "400": _ERROR, "404": _ERROR},
                    [_DATASET, _VERSION]),
                "delete": _op("Delete a version no queued or running job reads (its number is never given again)", {
                    "204": {"description": "deleted"}, "400": _ERROR, "404": _ERROR, "409": _ERROR},
                    [_DATASET, _VERSION]),
            },
            f"/jupyter-jobs/{kind}/{{name}}/versions/{{version}}/download": {"get": _op(
                "A version's files as one zip, streamed", {
                    "200": {"description": "a zip", "content": {"application/zip": {"schema": {
                        "type": "string", "format": "binary"}}}}, "400": _ERROR, "404": _ERROR},
                [_DATASET, _VERSION])},
        })
    return paths


def _definition_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/jupyter-jobs/workflow-definitions": {"get": _op("Named workflows, each with its newest spec version", {
            "200": _json(_ref("WorkflowDefinitionList"), "the named workflows")})},
        "/jupyter-jobs/workflow-definitions/{name}": {
            "get": _op("A named workflow's spec versions, newest first", {
                "200": _json(_ref("WorkflowDefinitionHistory"), "its history"), "404": _ERROR}, [name]),
            "put": _op("Save a new spec version (checked whole first)", {
                "201": _json(_ref("WorkflowDefinition"), "the version"), "400": _ERROR}, [name],
                body=_ref("WorkflowDefinitionInput")),
        },
        "/jupyter-jobs/workflow-definitions/{name}/runs": {
            "get": _op("Its runs, newest first", {"200": _json(_ref("WorkflowPage"), "a page of runs"),
                                                  "404": _ERROR}, [name]),
            "post": _op("Run it with inputs (its newest spec, a version, or a new spec saved first)", {
                "201": _json(_ref("WorkflowRun"), "the run"), "400": _ERROR, "404": _ERROR}, [name],
                body=_ref("WorkflowRunInput")),
        },
    }


def _deployment_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    endpoint = {"name": "endpoint", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/jupyter-jobs/deployments": {
            "get": _op("Deployments, each with its replicas and the last minute's requests", {
                "200": _json(_ref("DeploymentList"), "the deployments")}),
            "post": _op("A new deployment: its replicas start and its endpoints' addresses are stable", {
                "201": _json(_ref("Deployment"), "the deployment"), "400": _ERROR, "409": _ERROR},
                body=_ref("DeploymentInput")),
        },
        "/jupyter-jobs/deployments/{name}": {
            "get": _op("A deployment", {"200": _json(_ref("Deployment"), "the deployment"), "404": _ERROR}, [name]),
            "put": _op("A new spec (a new version, rolled out), a version served again ({\"version\": N}), or "
                       "new replicas", {"200": _json(_ref("Deployment"), "the deployment"), "400": _ERROR,
                                        "404": _ERROR}, [name], body=_ref("DeploymentInput")),
            "delete": _op("Stop its replicas and forget it (their jobs stay in the history)", {
                "204": {"description": "deleted"}, "404": _ERROR}, [name]),
        },
        "/jupyter-jobs/deployments/{name}/{endpoint}/": {"get": _op(
            "The endpoint by name, behind Jupyter's login: sent on (307) to its stable address", {
                "307": {"description": "to the endpoint's address"}, "404": _ERROR}, [name, endpoint])},
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
