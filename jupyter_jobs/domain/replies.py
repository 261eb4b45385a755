"""The public shapes of the service: what every face (REST, the kernel's embedded service,
the CLI) gets back, and what the OpenAPI document describes. Built from these models, the
faces cannot drift apart, and neither can the document."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .status import JobStatus
from .errors import SpecError


class _Reply(BaseModel):
    # fields with defaults are still always present in a reply: the document says so
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Capabilities(_Reply):
    """What a backend honours from a spec."""

    containers: bool = False
    gpus: bool = False
    cpus: bool = False
    memory: bool = False
    nodes: bool = False
    artifacts: bool = True
    storage: bool = True
    reattach: bool = True
    dependencies: bool = Field(False, description="runs a workflow's graph itself, even while the server is down")
    environments: bool = Field(False, description="builds environments from a spec's requirements")


class BackendInfo(_Reply):
    name: str
    description: str
    default: bool
    available: bool
    reason: Optional[str] = None
    capabilities: Capabilities
    details: dict[str, Any] = Field(default_factory=dict, description="engine facts, e.g. its version")


class GPUInfo(_Reply):
    index: int
    name: str
    memory: Optional[int] = Field(None, description="bytes")
    in_use: int = Field(description="jobs using this device now")


class WebhookStatus(_Reply):
    """A configured webhook's deliveries (its secret is never shown)."""

    url: str
    events: list[str]
    delivered: int
    failed: int = Field(description="deliveries given up after every attempt")
    pending: int
    dropped: int = Field(description="deliveries dropped from a full queue")
    last_error: Optional[str] = None
    last_delivered_at: Optional[str] = None


class InstanceTypeInfo(_Reply):
    """A machine shape the admin named: `"instance_type": name` in a spec."""

    name: str
    spec: dict[str, Any] = Field(description="the fields it sets (resources, backend, image, ...)")
    backend: str
    available: bool = Field(description="a job of this type could start now (its backend is up, its GPUs free)")
    reason: Optional[str] = None


class EnvironmentInfo(_Reply):
    id: str
    kind: str = Field(description="venv: a virtual environment on the host (local, Slurm)")
    base: Optional[str] = Field(None, description="the interpreter it is built on")
    requirements: str
    size: int = Field(description="bytes")
    built_at: Optional[float] = None
    last_used_at: Optional[float] = None


class EnvironmentList(_Reply):
    environments: list[EnvironmentInfo]


class BackendsReply(_Reply):
    backends: list[BackendInfo]
    gpus: list[GPUInfo]
    webhooks: list[WebhookStatus] = Field(default_factory=list)
    instance_types: list[InstanceTypeInfo] = Field(default_factory=list)


class JobEvent(_Reply):
    at: str
    status: str
    message: Optional[str] = None


class Artifact(_Reply):
    path: str
    size: int
    modified: float


class ArtifactList(_Reply):
    artifacts: list[Artifact]
    folder: Optional[str] = Field(None, description="the artifacts folder relative to the server's root, when it "
                                                    "is under it (the file browser can show it); else null")


class LogChunk(_Reply):
    """One NDJSON line of a log; resume with offset=next."""

    offset: int
    next: int
    stream: Literal["stdout", "stderr"]
    text: str


class LogEnd(_Reply):
    """The last NDJSON line of a followed log: how the job ended."""

    status: JobStatus
    exit_code: Optional[int] = None
    reason: Optional[str] = None
    message: Optional[str] = None


class SeriesData(_Reply):
    """One series, as columns: point i is (steps[i], values[i]) reported at times[i]."""

    steps: list[float]
    values: list[float]
    times: Optional[list[Optional[float]]] = Field(
        description="seconds since the epoch (null where a line gave none); null when no point of the page has one")


class MetricsPage(_Reply):
    """Points of a job's series after a cursor; resume with since=next (also the NDJSON lines of
    follow=true, which end with the job's final status)."""

    series: dict[str, SeriesData]
    next: str = Field(description="pass as since= to get what comes after")
    more: bool = Field(description="more is there to read now (a page holds at most a few MB per file)")
    bad_lines: int = Field(description="lines in this page that were not a JSON object of numbers")


class MetricSummary(_Reply):
    last: float
    step: float
    min: float
    max: float
    count: int


class MetricsSummary(_Reply):
    series: dict[str, MetricSummary]
    bad_lines: int


def _parts(value: Any) -> Any:
    """A comma-separated string or a list, as its non-empty parts (stripped); anything else as
    it is, for the field's own validation to refuse."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list):
        return parts
    return [p.strip() if isinstance(p, str) else p for p in parts if p not in ("", None) and str(p).strip()]


class _Query(BaseModel):
    """Query parameters, from a query string or keyword arguments alike; a bad one is a
    SpecError naming it (a 400 on every face)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def parse(cls, **raw: Any) -> Any:
        try:
            return cls.model_validate({k: v for k, v in raw.items() if v is not None})
        except ValidationError as exc:
            raise SpecError.from_validation(exc) from None


class MetricsQuery(_Query):
    """What to read of a job's series: some names (comma-separated or repeated), after a cursor."""

    names: list[str] = Field(default_factory=list, max_length=200)
    since: Optional[str] = Field(None, max_length=100)

    @field_validator("names", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        parts = _parts(value)
        if isinstance(parts, list) and any(not isinstance(p, str) or len(p) > 200 for p in parts):
            raise ValueError("each name is a string of at most 200 characters")
        return parts


class WorkflowJob(_Reply):
    """One job of a run: its workflow job's name, its matrix combination, the job itself."""

    name: str
    key: str = Field(description="the name, or name[k=v,...] for a matrix combination")
    matrix: dict[str, str]
    job_id: str
    status: JobStatus
    needs: list[str]
    started_at: Optional[str] = Field(None, description="when it started running (ISO 8601)")
    finished_at: Optional[str] = Field(None, description="when it ended (ISO 8601)")


class WorkflowRunSummary(_Reply):
    id: str
    name: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    workspace: str
    scheduler: str = Field("service", description="who orders its jobs: the service, or their backend "
                           "(`slurm`: the cluster runs the graph with its own dependencies, even while "
                           "the server is down)")
    message: Optional[str] = None
    created_at: str
    finished_at: Optional[str] = None
    counts: dict[str, int] = Field(default_factory=dict, description="how many of its jobs (the newest of "
                                   "each: a rerun makes new ones) are in each status")
    definition: Optional[str] = Field(None, description="the named workflow it runs, if any")
    definition_version: Optional[int] = Field(None, description="which spec version of it")
    inputs: dict[str, Any] = Field(default_factory=dict, description="the inputs it was given (defaults filled in)")


class WorkflowRun(WorkflowRunSummary):
    spec: Any = Field(description="the workflow as submitted (YAML text or an object)")
    jobs: list[WorkflowJob] = Field(description="the newest job of each of its jobs (a rerun makes new ones)")
    best: Optional[str] = Field(None, description="the metric that marks its best job, `NAME:min` or "
                                "`NAME:max` (the spec's `best`; a sweep's --sweep-metric)")
    started: Optional[list[str]] = Field(None, description="a rerun's reply only: the keys of the jobs it "
                                         "started again")


class WorkflowPage(_Reply):
    workflows: list[WorkflowRunSummary]
    next_cursor: Optional[int] = Field(None, description="pass as cursor for the next page")



class ScheduleInput(_Query):
    """A schedule as a user asks for it."""

    spec: dict[str, Any] = Field(description="a job spec (a command or a notebook), as POST /jobs takes")
    cron: str = Field(max_length=200, description="five fields (minute hour day month weekday); a sixth for seconds")
    timezone: str = Field("UTC", max_length=100, description="an IANA time zone the expression is read in")
    name: Optional[str] = Field(None, max_length=200)
    catch_up: bool = Field(False, description="after a server outage, run a missed time once at start (else skip)")
    overlap: Literal["skip", "allow"] = Field("skip", description="skip a time while the previous job runs, or not")

    @classmethod
    def parse(cls, body: Any) -> ScheduleInput:  # type: ignore[override]
        if not isinstance(body, dict):
            raise SpecError.one("body", "a schedule is a JSON object")
        return super().parse(**body)


class Schedule(_Reply):
    id: str
    name: str
    spec: dict[str, Any]
    cron: str
    timezone: str
    catch_up: bool
    overlap: Literal["skip", "allow"]
    paused: bool
    next_at: Optional[str] = Field(None, description="when it fires next (null while paused)")
    next_runs: list[str] = Field(default_factory=list, description="its next five times")
    last_at: Optional[str] = None
    last_job: Optional[str] = Field(None, description="the job it started last")
    message: Optional[str] = Field(None, description="what happened at its last time, when it was not a job")
    created_at: str


class SchedulePage(_Reply):
    schedules: list[Schedule]
    next_cursor: Optional[int] = None


class _PageQuery(_Query):
    """A listing's page: its size and where the previous page ended (keyset pagination)."""

    limit: int = Field(50, ge=1, le=500)
    cursor: Optional[int] = Field(None, ge=0, le=2**62)


class SchedulesQuery(_PageQuery):
    """The page of a listing of schedules."""


class WorkflowQuery(_PageQuery):
    """The filters of a listing of workflow runs."""

    status: list[Literal["queued", "running", "succeeded", "failed", "cancelled"]] = Field(default_factory=list)

    @field_validator("status", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _parts(value)

    @field_validator("limit", "cursor", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value


class WorkflowSubmission(BaseModel):
    spec: Union[str, dict[str, Any]] = Field(description="YAML (or JSON) text, or the same as an object")
    workspace: str = Field("", description="the folder under the server's root every job of the run gets")


class JobPage(_Reply):
    jobs: list[dict[str, Any]]
    next_cursor: Optional[int] = Field(None, description="pass as cursor for the next page")


class ListQuery(_PageQuery):
    """The filters of a job listing."""

    status: list[JobStatus] = Field(default_factory=list)
    project: Optional[str] = Field(None, max_length=200)
    q: Optional[str] = Field(None, max_length=200, description="text in the name, command, id or a tag")
    tag: Optional[str] = Field(None, max_length=100, description="only jobs with this tag")
    workflow: Optional[str] = Field(None, max_length=100, description="only the jobs of this workflow run")
    schedule: Optional[str] = Field(None, max_length=100, description="only the jobs this schedule started")
    origin: list[str] = Field(default_factory=list, max_length=100,
                              description="only the jobs these submitters started (comma-separated)")

    @field_validator("origin", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return _parts(value)

    @field_validator("status", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        """`"queued,running"`, `["queued", "running"]` or None."""
        parts = _parts(value)
        if not isinstance(parts, list):
            return parts
        out = []
        for part in parts:
            if part not in {s.value for s in JobStatus} and not isinstance(part, JobStatus):
                allowed = ", ".join(s.value for s in JobStatus)
                raise ValueError(f"unknown status {part!r}; one of {allowed}")
            out.append(part)
        return out

    @field_validator("project", "tag", "cursor", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("q", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        """Spaces around a search (typed, or left by a form) match nothing in particular."""
        return (value.strip() or None) if isinstance(value, str) else value



# -- the host's GPUs, as an admin reads them (GET /host) -------------------------------------------
class HostHolder(_Reply):
    """A job holding a device (of any user's server on the host)."""

    user: str
    job: Optional[str] = Field(None, description="its id: the viewer's own jobs only, every job for an admin")
    project: Optional[str] = None
    since: float = Field(description="when its GPU time began (seconds since the epoch)")


class HostDevice(_Reply):
    index: int
    name: str
    memory: Optional[int] = Field(None, description="bytes")
    holders: list[HostHolder]
    utilization: Optional[float] = Field(None, description="percent busy, from NVML (null where it gives none)")
    memory_used: Optional[float] = Field(None, description="bytes in use, from NVML")


class HostQueued(_Reply):
    """A job waiting for GPUs, in the order the host's rule serves them."""

    user: str
    job: Optional[str] = Field(None, description="its id: the viewer's own jobs only, every job for an admin")
    gpus: int
    priority: int = Field(description="as the policy capped it")
    project: Optional[str] = None
    since: float = Field(description="when it was queued (seconds since the epoch)")
    waiting: str = Field(description="the rule that holds it, in words")


class GPUUse(_Reply):
    """One user's (or project's) use of the host's GPUs."""

    gpus: int = Field(description="held now")
    running: int = Field(description="GPU jobs running now")
    day: float = Field(description="GPU-hours in the last 24 hours")
    week: float = Field(description="GPU-hours in the last 7 days")
    decayed: float = Field(description="GPU-hours decayed by the policy's half-life (fair share)")


class HostLimits(_Reply):
    max_priority: Optional[int] = None
    gpus: Optional[int] = Field(None, description="GPUs at once")
    running: Optional[int] = Field(None, description="GPU jobs at once")
    gpu_hours_per_day: Optional[float] = None


class HostPolicy(_Reply):
    """The rule in force: the admin's policy file, or this server's own configuration."""

    half_life_hours: float
    default: HostLimits
    users: dict[str, HostLimits]
    projects: dict[str, HostLimits]


class HostReply(_Reply):
    scope: Literal["host", "server"] = Field(description="host: every server on the host shares one GPU pool; "
                                             "server: this server allocates its GPUs on its own")
    user: str = Field(description="the Unix user this server runs as")
    admin: bool = Field(description="whether this server shows every job's id (its user is a host admin)")
    devices: list[HostDevice]
    queue: list[HostQueued]
    users: dict[str, GPUUse]
    projects: dict[str, GPUUse]
    policy: HostPolicy
    policy_problem: Optional[str] = Field(None, description="why the admin's policy file is not applied, if so")
    at: float = Field(description="when this was read (seconds since the epoch)")


class DatasetVersion(_Reply):
    """An immutable version of a dataset: its files are a snapshot in the content store."""

    name: str
    version: int
    size: int = Field(description="bytes")
    files: int
    created_at: str
    created_by: str = Field(description="the Unix user whose server made it")
    job: Optional[str] = Field(None, description="the job whose artifacts it was made from")
    source: dict[str, Any] = Field(description="{'folder': ...} or {'job': ..., 'path': ...}")


class ModelVersion(DatasetVersion):
    """A model version: a dataset version plus what Gradient's create-model records."""

    framework: Optional[str] = Field(None, description="its framework or type (pytorch, onnx, tensorflow, custom)")
    description: Optional[str] = None
    metrics: Optional[dict[str, Any]] = Field(None, description="the last value of each series of the job that "
                                              "made it")
    spec: Optional[dict[str, Any]] = Field(None, description="the spec of the job that made it")
    datasets: Optional[list[dict[str, Any]]] = Field(None, description="the dataset versions that job read")


class DatasetMade(DatasetVersion):
    notes: list[str] = Field(default_factory=list, description="what was left out, and why (symlinks out)")


class DatasetReader(_Reply):
    id: str
    status: str
    created_at: str


class DatasetVersionDetail(DatasetVersion):
    read_by: list[DatasetReader] = Field(description="jobs whose spec reads it, newest first (its lineage)")


class DatasetSummary(_Reply):
    name: str
    versions: int
    latest: DatasetVersion


class DatasetList(_Reply):
    datasets: list[DatasetSummary]


class DatasetVersions(_Reply):
    name: str
    versions: list[DatasetVersion] = Field(description="newest first")


class DatasetInput(BaseModel):
    """A new version: from a folder under the root, or from a finished job's artifacts."""

    model_config = ConfigDict(extra="forbid")
    folder: Optional[str] = Field(None, description="a folder under the server's root")
    job: Optional[str] = Field(None, description="a finished job")
    path: Optional[str] = Field(None, description="a file or folder of that job's artifacts (default: all)")


class ModelInput(DatasetInput):
    """A new model version: a job's artifact file or folder (or a folder), with its framework."""

    framework: Optional[str] = Field(None, max_length=100, description="pytorch, onnx, tensorflow, custom...")
    description: Optional[str] = Field(None, max_length=5000)


class ModelSummary(_Reply):
    name: str
    versions: int
    latest: ModelVersion


class ModelList(_Reply):
    models: list[ModelSummary]


class JobVersions(_Reply):
    """The versions a job made: its dataset and model outputs, its artifacts saved or registered."""

    datasets: list[DatasetVersion]
    models: list[ModelVersion]


class ModelVersions(_Reply):
    name: str
    versions: list[ModelVersion] = Field(description="newest first")


class ModelMade(ModelVersion):
    notes: list[str] = Field(default_factory=list, description="what was left out, and why (symlinks out)")


class ModelVersionDetail(ModelVersion):
    read_by: list[DatasetReader] = Field(description="jobs whose spec reads it, newest first")


class WorkflowDefinition(_Reply):
    """A named workflow's spec version."""

    name: str
    version: int
    spec: Any = Field(description="the workflow spec (YAML text or an object), its `inputs` declared at the top")
    workspace: str = Field(description="the folder its runs get, unless a run names another")
    created_at: str
    created_by: str


class WorkflowDefinitionSummary(_Reply):
    name: str
    versions: int
    latest: WorkflowDefinition


class WorkflowDefinitionList(_Reply):
    workflows: list[WorkflowDefinitionSummary]


class WorkflowDefinitionHistory(_Reply):
    name: str
    versions: list[WorkflowDefinition] = Field(description="newest first")


class WorkflowDefinitionInput(BaseModel):
    """A new spec version of a named workflow."""

    model_config = ConfigDict(extra="forbid")
    spec: Any = Field(description="YAML text or an object: name, inputs, defaults, jobs")
    workspace: str = Field("", max_length=4096, description="the folder its runs get by default")


class WorkflowRunInput(BaseModel):
    """A run of a named workflow: its newest spec (or `version`, or a new `spec`, saved first)."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict, description="values of the inputs it declares")
    version: Optional[int] = Field(None, ge=1, description="a spec version (default: the newest)")
    spec: Any = Field(None, description="a new spec: saved as the next version, then run")
    workspace: Optional[str] = Field(None, max_length=4096, description="another folder than the definition's")
    rerun: Optional[str] = Field(None, max_length=100, description="a run of it to run again: its version and "
                                 "inputs, with `inputs` changing some")


class Replicas(BaseModel):
    """How many replicas a deployment runs: between `min` and `max`, as many as keep about
    `target` requests under way each (autoscaling); `min: 0` scales to zero when idle, and the
    first request then waits for a replica."""

    model_config = ConfigDict(extra="forbid")
    min: int = Field(1, ge=0, le=32, strict=True)
    max: Optional[int] = Field(None, ge=1, le=32, strict=True, description="default: min (at least 1)")
    target: int = Field(4, ge=1, le=10_000, strict=True, description="requests under way per replica it scales "
                        "out at")
    scale_in_after: float = Field(60.0, ge=1, le=86400, description="seconds of less load before it scales in")

    @field_validator("max")
    @classmethod
    def _at_least_min(cls, value: Optional[int], info: Any) -> Optional[int]:
        if value is not None and value < info.data.get("min", 1):
            raise ValueError("max must be at least min")
        return value

    @property
    def most(self) -> int:
        return self.max or max(self.min, 1)


class DeploymentInput(_Query):
    """A deployment as a user asks for it (POST), or what changes (PUT: a new spec starts a
    rollout of a new version; new replicas scale it)."""

    name: Optional[str] = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="a-z, 0-9 and '-'")
    spec: Optional[dict[str, Any]] = Field(None, description="a job spec that exposes at least one port")
    replicas: Optional[Replicas] = None
    version: Optional[int] = Field(None, ge=1, strict=True, description="an update only: a version it served to "
                                   "serve again (a rollback)")

    @classmethod
    def parse(cls, body: Any) -> DeploymentInput:  # type: ignore[override]
        if not isinstance(body, dict):
            raise SpecError.one("body", 'a deployment is a JSON object: {"name", "spec", "replicas": {"min", "max"}}')
        return super().parse(**body)


class DeploymentReplica(_Reply):
    job_id: str
    version: int
    status: JobStatus
    ready: bool = Field(description="running, and every endpoint answers its health check")


class DeploymentEndpoint(_Reply):
    name: str
    path: str = Field(description="the stable address, relative to the server's base URL: balanced over the "
                      "ready replicas")
    url: Optional[str] = None


class DeploymentVersion(_Reply):
    version: int
    spec: dict[str, Any]
    created_at: str


class DeploymentStats(_Reply):
    """Its requests over the last minute, as the Jupyter server proxied them."""

    requests_per_second: float = Field(description="over the last 10 s")
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    errors: int = Field(description="answers of 5xx, or none, in the last minute")
    in_flight: int = Field(description="requests under way now, waiting ones included")


class Deployment(_Reply):
    name: str
    version: int = Field(description="the spec version it serves (or rolls out)")
    replicas: Replicas
    status: Literal["starting", "ready", "degraded", "rolling out", "rollout failed", "failing", "idle"]
    message: Optional[str] = None
    endpoints: list[DeploymentEndpoint]
    running: list[DeploymentReplica] = Field(description="its replicas not yet ended, oldest first")
    versions: list[DeploymentVersion] = Field(description="newest first")
    wanted: int = Field(description="how many replicas it runs now (autoscaling, between min and max)")
    stats: DeploymentStats
    created_at: str
    created_by: str
    updated_at: str


class DeploymentList(_Reply):
    deployments: list[Deployment]
