"""What a user asks for: JobSpec and its parts, checked field by field (a bad field is a 400
naming it, never a 500). Pure: no I/O."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import FieldError, SpecError
from .status import FailureReason

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE", re.I)
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.I)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
REDACTED = "********"


def _number(value: Any, what: str) -> None:
    """Only short strings and finite numbers get past here, as ValueErrors (a 400), never 500s."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be {what}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be {what}, not {value}")
    if isinstance(value, int) and not -(10**18) < value < 10**18:
        raise ValueError(f"must be {what}; {str(value)[:12]}... is out of range")
    if isinstance(value, str) and len(value) > 64:
        raise ValueError(f"must be {what}")


def parse_memory(value: Union[str, int]) -> int:
    """Bytes from `2g`, `512m`, `1.5GiB` or a plain number of bytes (binary units, as Docker)."""
    _number(value, "a size such as '2g' or '512m'")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _MEMORY.match(value)
        if not match:
            raise ValueError(f"memory {value!r} is not a size such as '2g' or '512m'")
        number, unit = float(match.group(1)), (match.group(2) or "")[:1].lower()
    size = number * _MEMORY_UNITS[unit]
    if not 1 << 20 <= size <= 1 << 50:
        raise ValueError("memory must be between 1m and 1024t")
    return int(size)


def parse_duration(value: Union[str, int, float]) -> float:
    """Seconds from `3600`, `90s`, `30m`, `2h` or `1d`."""
    _number(value, "a number of seconds or a duration such as '30m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a number of seconds or a duration such as '30m'")
        seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "").lower()]
    if not 0 < seconds <= 366 * 86400:
        raise ValueError("must be greater than 0 and at most a year")
    return seconds


def pip_option(lines: list[str]) -> Optional[str]:
    """Why these requirement lines are refused, or None: a line starting with `-` is an
    installer option (`-r /etc/...`, `-e file://...`, `--index-url`, `--config-settings`), which
    would read files outside the workspace, run a local project's build, or swap the admin's
    index. Packages only; the index is the admin's setting."""
    for number, line in enumerate(lines, 1):
        if line.strip().startswith("-"):
            return (f"line {number}, {line.strip()[:200]!r}, is an installer option, not a requirement: "
                    "give package requirements only (such as 'numpy>=2'); the package index is the admin's")
    return None


#: the most a spec may carry: it is stored with every job and sent in every listing
MAX_COMMAND = 64 << 10
MAX_ARGS = 4096
MAX_ENV_VALUE = 32 << 10
MAX_ENV_TOTAL = 256 << 10
MAX_ENV_KEYS = 256


class _Strict(BaseModel):
    # no silent edits of strings (an env value keeps its spaces); numbers are strict fields
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    """What the job needs from the machine; each backend maps these to its own limits."""

    gpus: int = Field(0, ge=0, le=64, strict=True)  # `false` or `"2"` is a 400, not a coerced value
    cpus: Optional[float] = Field(None, gt=0, le=1024, strict=True)
    nodes: int = Field(1, ge=1, le=1024, strict=True, description="machines for a multi-node job (Slurm)")
    memory: Optional[str] = None

    @field_validator("memory", mode="before")
    @classmethod
    def _check_memory(cls, value: Any) -> Optional[str]:
        if value is None or value == "":
            return None
        parse_memory(value)
        return str(value)

    @property
    def memory_bytes(self) -> Optional[int]:
        return parse_memory(self.memory) if self.memory else None


class SlurmOptions(_Strict):
    """Per-job Slurm settings, on top of what the admin configured."""

    partition: Optional[str] = Field(None, max_length=200)
    account: Optional[str] = Field(None, max_length=200)
    qos: Optional[str] = Field(None, max_length=200)
    sbatch_args: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("partition", "account", "qos", "sbatch_args")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        if any("\n" in v or "\r" in v for v in ([value] if isinstance(value, str) else value or [])):
            raise ValueError("must not contain line breaks")
        return value


class GitSource(_Strict):
    """A workspace taken from git: `"workspace": {"git": URL, "ref": ..., "subdir": ...}`."""

    url: str = Field(min_length=1, max_length=2000, description="the repository (https, ssh, git://, or a path)")
    ref: str = Field("HEAD", min_length=1, max_length=250, description="a branch, tag or commit")
    subdir: str = Field("", max_length=1000, description="a folder of the repository to use as the workspace")
    commit: Optional[str] = Field(None, pattern=r"^[0-9a-f]{40}$", description="the commit it ran at (the "
                                  "service resolves the ref at submit time; a rerun uses the same)")

    @field_validator("url", "ref")
    @classmethod
    def _no_option(cls, value: str) -> str:
        if value.startswith("-") or any(c in value for c in "\x00\n\r"):
            raise ValueError("must not start with '-' or hold control characters")
        return value

    @field_validator("subdir")
    @classmethod
    def _inside(cls, value: str) -> str:
        value = value.strip("/")
        if ".." in value.split("/") or "\x00" in value:
            raise ValueError("must be a folder inside the repository, without '..'")
        return value


DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_RESERVED_MOUNTS = ("/workspace", "/artifacts", "/storage", "/outputs", "/metrics", "/proc", "/sys", "/dev")


_OUTPUT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


class Output(_Strict):
    """A folder the job writes at `$JOB_OUTPUTS_DIR/<key>` (`/outputs/<key>` in a container):
    a `dataset` or `model` output becomes a new version of `name` when the job succeeds; a
    `volume` output is read-only at `/inputs/<key>` for the workflow jobs that need this one."""

    type: Literal["dataset", "model", "volume"]
    name: Optional[str] = Field(None, description="the dataset or model a new version is made of")
    framework: Optional[str] = Field(None, max_length=100, description="a model's framework or type")
    description: Optional[str] = Field(None, max_length=10_000, description="a model version's description")

    @model_validator(mode="after")
    def _check(self) -> Output:
        if self.type == "volume" and (self.name or self.framework or self.description):
            raise ValueError("a volume output takes no name, framework or description")
        if self.type != "volume" and not (self.name and DATASET_NAME.fullmatch(self.name)):
            raise ValueError(f"a {self.type} output names the {self.type} it makes a version of: a-z, 0-9, '.', "
                             "'_' and '-', starting with a letter or digit")
        if self.type == "dataset" and (self.framework or self.description):
            raise ValueError("framework and description are a model's")
        return self


class DatasetRef(_Strict):
    """A dataset version a job reads: mounted read-only, no copy where the backend can mount
    (containers: `/datasets/<name>` or `mount`; local and Slurm: `$JOB_DATASETS_DIR/<name>`)."""

    name: str = Field(description="the dataset's name")
    version: Optional[int] = Field(None, ge=1, strict=True, description="its version (default: the newest, "
                                   "resolved and recorded at submit, so a rerun reads the same bytes)")
    mount: Optional[str] = Field(None, max_length=500, description="where a container sees it (an absolute "
                                 "path; default /datasets/<name>)")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not DATASET_NAME.fullmatch(value):
            raise ValueError("a dataset name is a-z, 0-9, '.', '_' and '-', starting with a letter or digit, "
                             "at most 63 characters")
        return value

    @field_validator("mount")
    @classmethod
    def _check_mount(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        parts = value.split("/")
        if not value.startswith("/") or ".." in parts or any(c in value for c in "\x00\n\r:,") or value == "/":
            raise ValueError("mount must be an absolute path without '..', such as /data/train")
        if any(value == r or value.startswith(r + "/") for r in _RESERVED_MOUNTS):
            raise ValueError(f"mount must not be under {', '.join(_RESERVED_MOUNTS)}")
        return value.rstrip("/")


_ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
MAX_EXPOSE = 16


class Expose(_Strict):
    """A port the job serves, reached through the Jupyter server at the endpoint's own address
    (`/jupyter-jobs/ep/{key}/`, in the job's `endpoints`) or by name behind Jupyter's login,
    `/jupyter-jobs/jobs/{id}/endpoints/{name}/` (the job listens on `$PORT_<NAME>`)."""

    port: int = Field(ge=1, le=65535, strict=True, description="the port the job listens on (the local backend "
                      "picks a free one instead: the job must read $PORT_<NAME>)")
    name: str = Field(description="a-z, 0-9 and -, starting with a letter; the URL's and the variable's name")
    health: Optional[str] = Field(None, max_length=1000, description="a path answering 2xx once the service is "
                                  "ready (default: ready once the port accepts connections)")
    internal: bool = Field(False, description="a port only the Jupyter server connects to (a job kernel's "
                           "sockets): published like the others, never proxied, probed or listed as an endpoint")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _ENDPOINT_NAME.fullmatch(value):
            raise ValueError("an endpoint name is a-z, 0-9 and -, starting with a letter, at most 40 characters")
        return value

    @field_validator("health")
    @classmethod
    def _check_health(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.startswith("/") or value.startswith("//") or any(
                c in value for c in "\\\r\n\x00 ")):
            raise ValueError("health must be a path on the endpoint, such as /healthz")
        return value

    @property
    def variable(self) -> str:
        """The environment variable that tells the job its port."""
        return "PORT_" + self.name.upper().replace("-", "_")


class JobSpec(_Strict):
    """A job as a user asks for it: files + container + command (or notebook) + resources."""

    command: Optional[Union[str, list[str]]] = None
    notebook: Optional[str] = Field(None, max_length=4096, description="a notebook in the workspace to execute "
                                    "instead of a command; the executed copy is an artifact")
    cell: Optional[str] = Field(None, max_length=1_000_000, description="the notebook cell the job came from, as "
                                "the user wrote it (`%%job ...` and its code): shown and copied as written, while "
                                "`command` is what runs")
    parameters: dict[str, Any] = Field(default_factory=dict, description="the notebook's parameters (JSON "
                                       "values), injected after its cell tagged `parameters`, as papermill does")
    kernel: Optional[str] = Field(None, max_length=200, description="the kernel that runs the notebook "
                                  "(default: the one the notebook names)")
    requirements: Optional[Union[str, list[str]]] = Field(None, description="packages to run with: a requirements "
                                                         "file in the workspace, a list of requirements, or 'auto' "
                                                         "(its requirements.txt if there is one)")
    git: Optional[GitSource] = Field(None, description="the workspace from a git repository (given as "
                                     "`workspace: {git, ref, subdir}`)")
    instance_type: Optional[str] = Field(None, max_length=100, description="a machine shape the admin named "
                                         "(GET /backends lists them): its resources, backend and image, where "
                                         "this spec sets none")
    workspace: str = Field("", max_length=4096)
    live: bool = Field(False, strict=True, description="run in the workspace folder itself, not a snapshot of it "
                       "(an interactive kernel's files are the notebook's); a job's own files are otherwise frozen "
                       "at submit time")
    backend: Optional[str] = Field(None, max_length=100)
    image: Optional[str] = Field(None, max_length=1000)
    name: Optional[str] = Field(None, max_length=200)
    project: Optional[str] = Field(None, max_length=200)
    description: Optional[str] = Field(None, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    priority: int = Field(0, ge=-1000, le=1000, strict=True, description="higher starts first (-1000..1000); on "
                          "a shared host, at most what the admin's policy allows the user (the rest is ignored)")
    preemptible: bool = Field(False, strict=True, description="may be stopped (SIGTERM, then the kill grace) for a "
                              "job ahead of it in the host's order, then queued again: attempt counts up and "
                              "JOB_PREEMPTED=1 is set, so it can resume from a checkpoint in $JOB_STORAGE_DIR")
    timeout: Optional[float] = None
    retries: int = Field(0, ge=0, le=10, strict=True, description="attempts after the first, for retry_on failures")
    retry_on: list[FailureReason] = Field(
        default_factory=lambda: [FailureReason.LOST, FailureReason.BACKEND_ERROR], max_length=6,
        description="the failure reasons that are retried",
    )
    retry_backoff: float = Field(10.0, description="seconds before the first retry; doubled for each next one")
    slurm: Optional[SlurmOptions] = None
    datasets: list[DatasetRef] = Field(default_factory=list, max_length=32, description="dataset versions the "
                                       "job reads, mounted read-only")
    models: list[DatasetRef] = Field(default_factory=list, max_length=32, description="model versions the job "
                                     "reads, mounted read-only (containers: /models/<name>; else $JOB_MODELS_DIR)")
    outputs: dict[str, Output] = Field(default_factory=dict, max_length=32, description="folders the job writes "
                                       "at $JOB_OUTPUTS_DIR/<key>: a dataset or model output is committed as a new "
                                       "version when the job succeeds; a volume output is read by the jobs that "
                                       "need it at /inputs/<key>")
    expose: list[Expose] = Field(default_factory=list, max_length=MAX_EXPOSE, description="ports the job serves, "
                                 "reached through the Jupyter server at each endpoint's own address (the job's "
                                 "`endpoints`), or by name behind Jupyter's login at "
                                 "/jupyter-jobs/jobs/{id}/endpoints/{name}/")

    @field_validator("outputs")
    @classmethod
    def _check_outputs(cls, value: dict[str, Output]) -> dict[str, Output]:
        for key in value:
            if not _OUTPUT_KEY.fullmatch(key):
                raise ValueError(f"{key!r} is not an output key: letters, digits, '_' and '-', starting with a "
                                 "letter or '_'")
        return value

    @field_validator("expose")
    @classmethod
    def _check_expose(cls, value: list[Expose]) -> list[Expose]:
        for what, keys in (("name", [e.name for e in value]), ("port", [e.port for e in value])):
            twice = sorted({str(k) for k in keys if keys.count(k) > 1})
            if twice:
                raise ValueError(f"each endpoint needs its own {what}; {', '.join(twice)} is given twice")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _command_type(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str) and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ValueError("command must be a string (run by the shell) or a list of strings")
        return value

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: Optional[Union[str, list[str]]]) -> Optional[Union[str, list[str]]]:
        if value is None:
            return value
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("command must not be empty")
        elif not value or not value[0].strip():
            raise ValueError("command must be a non-empty string or list of strings")
        parts = [value] if isinstance(value, str) else value
        if any("\x00" in part for part in parts):
            raise ValueError("command must not contain NUL characters")
        if len(parts) > MAX_ARGS or sum(len(part) + 1 for part in parts) > MAX_COMMAND:
            raise ValueError(f"command is longer than {MAX_COMMAND >> 10} KiB or {MAX_ARGS} arguments: "
                             "put long scripts in a file")
        return value

    @field_validator("cell")
    @classmethod
    def _check_cell(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.startswith("%%job"):
            raise ValueError("a cell starts with its %%job line, as it was written")
        return value

    @field_validator("notebook")
    @classmethod
    def _check_notebook(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        value = value.replace("\\", "/").strip()
        if not value.endswith(".ipynb"):
            raise ValueError("must be a notebook (a .ipynb file)")
        if value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError("must be a path inside the workspace, without '..'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _git_workspace(cls, data: Any) -> Any:
        """`"workspace": {"git": URL, "ref": ..., "subdir": ...}` is recorded as `git`."""
        if isinstance(data, dict) and isinstance(data.get("workspace"), dict):
            given = dict(data["workspace"])
            data = {**data, "workspace": "", "git": {"url": given.pop("git", None), **given}}
        return data

    @field_validator("requirements", mode="before")
    @classmethod
    def _check_requirements(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            path = value.replace("\\", "/").strip()
            if path.startswith("/") or ".." in path.split("/") or "\x00" in path:
                raise ValueError("must be a file inside the workspace, 'auto', or a list of requirements")
            return path
        if isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 500:
            if any(not v.strip() for v in value):
                raise ValueError("each requirement must be a non-empty string")
            if any("\n" in v or "\r" in v for v in value):
                raise ValueError("a requirement must not hold line breaks")
            if why := pip_option(value):
                raise ValueError(why)
            return value
        raise ValueError("must be a file in the workspace (e.g. requirements.txt), 'auto', or a list of "
                         "requirement strings (at most 500)")

    @field_validator("parameters")
    @classmethod
    def _check_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        if any(not _ENV_KEY.fullmatch(key) for key in value):
            raise ValueError("parameter names must be identifiers (letters, digits, _)")
        if len(json.dumps(value)) > MAX_COMMAND:
            raise ValueError(f"parameters are larger than {MAX_COMMAND >> 10} KiB as JSON: put data in a file")
        return value

    @model_validator(mode="after")
    def _command_or_notebook(self) -> JobSpec:
        # a rule over several fields names its field as "field: message" (see SpecError)
        if self.command is not None and self.notebook is not None:
            raise ValueError("notebook: give a command or a notebook, not both")
        if self.command is None and self.notebook is None:
            raise ValueError("command: a job needs a command (or a notebook)")
        if self.parameters and self.notebook is None:
            raise ValueError("parameters: only a notebook job takes parameters")
        return self

    @field_validator("workspace")
    @classmethod
    def _check_workspace(cls, value: str) -> str:
        value = value.replace("\\", "/").strip("/") if not value.startswith("/") else value
        if value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError("workspace must be a folder relative to the server's root, without '..'")
        return "" if value == "." else value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        if any(not tag or len(tag) > 100 for tag in value):
            raise ValueError("tags must be non-empty strings of at most 100 characters")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not _ENV_KEY.fullmatch(key) or len(key) > 256]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {', '.join(repr(k[:40]) for k in bad[:5])}")
        if len(value) > MAX_ENV_KEYS:
            raise ValueError(f"at most {MAX_ENV_KEYS} variables")
        if any("\x00" in v for v in value.values()):
            raise ValueError("environment values must not contain NUL characters")
        if any(len(v) > MAX_ENV_VALUE for v in value.values()):
            raise ValueError(f"an environment value is longer than {MAX_ENV_VALUE >> 10} KiB")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_ENV_TOTAL:
            raise ValueError(f"the environment is larger than {MAX_ENV_TOTAL >> 10} KiB")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _check_timeout(cls, value: Any) -> Optional[float]:
        return None if value is None or value == "" else parse_duration(value)

    @field_validator("retry_backoff", mode="before")
    @classmethod
    def _check_backoff(cls, value: Any) -> float:
        return min(parse_duration(value), 86400.0) if value not in (0, "0") else 0.0

    @property
    def served(self) -> list[Expose]:
        """The endpoints clients reach through the proxy (a kernel's own sockets are not)."""
        return [expose for expose in self.expose if not expose.internal]

    def argv(self, python: str = "python3", notebook_runner: Optional[str] = None) -> list[str]:
        """The command as an argv: a string runs through the shell, a list runs as is; a notebook
        runs through the notebook runner (its source, handed over by the backend, so the job needs
        nothing of this package) with `python`."""
        if self.notebook is not None:
            if notebook_runner is None:
                raise ValueError("a notebook job's argv needs the notebook runner's source")
            return [python, "-c", notebook_runner, self.notebook, f"{self.notebook.rsplit('/', 1)[-1]}",
                    json.dumps(self.parameters), self.kernel or ""]
        return ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)

    def public(self) -> dict[str, Any]:
        """The spec as shown to clients: values of secret-looking env keys are never echoed."""
        data = self.model_dump(mode="json")
        data["env"] = {k: (REDACTED if _SECRET_KEY.search(k) else v) for k, v in self.env.items()}
        return data


    def as_file(self, fmt: str = "yaml") -> tuple[str, list[str]]:
        """The spec as a job file (YAML or JSON) anyone can submit again: only the fields that
        differ from the defaults, secret-looking env values left out. Returns (text, left out)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        secret = sorted(k for k in self.env if _SECRET_KEY.search(k))
        for key in secret:
            data["env"].pop(key)
        if "env" in data and not data["env"]:
            del data["env"]
        if fmt == "json":
            return json.dumps(data, indent=2) + "\n", secret
        import yaml  # the service's own dependency; models stays light for the kernel

        head = "".join(f"# left out: env.{k} (a secret): set it before submitting\n" for k in secret)
        return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), secret


def unstorable(data: Any, prefix: str = "", limit: int = 20) -> list[FieldError]:
    """The values in parsed JSON that could not be stored or sent back as given, each named by
    its path (`env.A`, `command.1`, `parameters.lr`): a lone surrogate (no UTF-8 for it, so
    SQLite and every reply would fail) and a number that is not finite (`1e999`, `NaN`: JSON
    has no such number, it would come back as something else). Iterative: bodies nest deeply."""
    found: list[FieldError] = []
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _has_surrogate(value):
                found.append(FieldError(field=path or "body", message="holds a lone surrogate (e.g. \\ud800): "
                                        "not text that can be stored; send valid Unicode"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                found.append(FieldError(field=path or "body", message=f"must be a finite number, not {value}"))
        elif isinstance(value, dict):
            for key, inner in value.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not key.isascii() and _has_surrogate(key):
                    found.append(FieldError(field=path or "body", message="a key holds a lone surrogate: not text "
                                            "that can be stored; send valid Unicode"))
                    continue
                stack.append((name, inner))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), inner) for i, inner in enumerate(value))
    return sorted(found, key=lambda e: e.field)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_spec(data: Any) -> JobSpec:
    """Validate a request body into a JobSpec, or raise SpecError naming each bad field."""
    spec, error = read_spec(data)
    if error is not None:
        raise error
    return spec  # type: ignore[return-value]


def read_spec(data: Any) -> tuple[Optional[JobSpec], Optional[SpecError]]:
    """A request body as (spec, None), or as (the rest, its errors): the rest is the body with
    each failing field left out (so it takes its default; a bad command becomes a stand-in), or
    None if even that fails. The service checks the rest too, to report every error at once."""
    if not isinstance(data, dict):
        return None, SpecError.one("body", "the job spec must be a JSON object")
    unfit = unstorable(data)
    for err in unfit:  # the rest is checked without them (a bad key's whole object goes)
        data = _without(data, tuple(err.field.split(".")))
    try:
        spec = JobSpec.model_validate(data)
        return (spec, None) if not unfit else (spec, SpecError(unfit))
    except ValidationError as exc:
        error, failed = SpecError(unfit).plus(SpecError.from_validation(exc)), exc
    if data.get("command") is None and data.get("notebook") is None:  # beside other errors, said too
        error = error.plus(SpecError.one("command", "a job needs a command (or a notebook)"))
    rest: dict[str, Any] = data
    for _ in range(3):  # leaving a field out may reveal no new error; a few rounds are plenty
        for err in failed.errors():
            rest = _without(rest, err["loc"])
        if rest.get("notebook") is None:
            rest = {**rest, "command": rest.get("command") or "true"}
        try:
            return JobSpec.model_validate(rest), error
        except ValidationError as again:
            failed = again
    return None, error


def _without(data: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any]:
    """`data` without the deepest object key on the path `loc` (copied, not changed in place)."""
    if not loc or loc[0] not in data:
        return data
    inner = data[loc[0]]
    if len(loc) > 1 and isinstance(inner, dict) and loc[1] in inner:
        return {**data, loc[0]: _without(inner, loc[1:])}
    return {k: v for k, v in data.items() if k != loc[0]}

