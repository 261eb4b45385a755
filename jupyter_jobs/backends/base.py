"""The Backend interface: how the service asks an engine to run, stop and find a job.

The service owns everything engine-neutral (queue, GPUs, timeouts, statuses, history);
a backend only turns a prepared JobContext into an Execution it can wait on or stop, and
finds that execution again from its saved `state` after a server restart.
"""

from __future__ import annotations

import abc
import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from traitlets import Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..environments.venvs import Environments
from ..storage.logs import JobLog
from ..domain.job import Job, Outcome
from ..domain.spec import JobSpec
from ..domain.replies import Capabilities
from ..storage.series import METRICS_FILE

OUTPUTS_DIR = "outputs"  # <artifacts>/outputs/<key>: the folders a job declares in `outputs`

#: variables of the server's environment that carry its credentials; jobs never inherit them
CREDENTIALS = ("JUPYTER_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTER_JOBS_TOKEN", "JPY_SESSION_NAME")


@dataclass(frozen=True)
class Dependency:
    """A job launched on the same engine that this one must wait for."""

    state: dict[str, Any]  # the other job's backend state (how the engine names it)
    any_end: bool = False  # any end will do (continue_on_error, max_parallel); else it must succeed


@dataclass(frozen=True)
class Mount:
    """Files a job reads read-only beside its workspace: `source` on the Jupyter host (or the
    shared folder), seen at `$JOB_<FOLDER>_DIR/<name>`, or in a container at `target` (default
    `/<folder>/<name>`); `folder` is `datasets` or `models`."""

    name: str
    source: Path
    target: Optional[str] = None
    folder: str = "datasets"

    @property
    def in_container(self) -> str:
        return self.target or f"/{self.folder}/{self.name}"


@dataclass
class JobContext:
    """Everything a backend needs to run one job; paths are on the Jupyter host."""

    job: Job
    dir: Path
    workspace: Path
    artifacts: Path
    storage: Path
    log: JobLog
    metrics: Path  # the folder of $JOB_METRICS_FILE, writable by the job
    gpus: Optional[list[int]] = None  # None: no GPU inventory on this host, leave devices alone
    #: for a fresh start: bytes per stream the log held before (an earlier attempt's output)
    log_base: Optional[dict[str, int]] = None
    #: a workflow job's inputs: the artifacts folders of the jobs it needs, by their folder name
    inputs: dict[str, Path] = field(default_factory=dict)
    #: the image to run instead of the spec's (its environment's image)
    image: Optional[str] = None
    #: variables the service adds (an environment's PATH and VIRTUAL_ENV), under the spec's own
    extra_env: dict[str, str] = field(default_factory=dict)
    #: jobs the engine itself must see end first (a backend whose capabilities say `dependencies`)
    depends: list[Dependency] = field(default_factory=list)
    #: the port each exposed endpoint listens on, by name (`Backend.listen_ports`)
    ports: dict[str, int] = field(default_factory=dict)
    #: what it reads read-only beside its workspace (dataset versions), linked under `dir/datasets`
    mounts: list[Mount] = field(default_factory=list)

    def env(self, *, artifacts: Optional[str] = None, storage: Optional[str] = None,
            metrics: Optional[str] = None, inputs: Optional[str] = None,
            mounts: Optional[str] = None, outputs: Optional[str] = None) -> dict[str, str]:
        """The job's own variables (paths as the job sees them; `mounts`: where `/datasets` and
        `/models` hang in a container), then the spec's env on top."""
        env = {
            "JOB_ID": self.job.id,
            "JOB_NAME": self.job.spec.name or "",
            "JOB_PROJECT": self.job.project,
            "JOB_ARTIFACTS_DIR": artifacts or str(self.artifacts),
            "JOB_STORAGE_DIR": storage or str(self.storage),
            "JOB_METRICS_FILE": f"{metrics or self.metrics}/{METRICS_FILE}",
            "PYTHONUNBUFFERED": "1",
            "JOB_ATTEMPT": str(self.job.attempt),
        }
        if self.job.preempted:  # a preempted job starts again: it may resume from its checkpoint
            env["JOB_PREEMPTED"] = "1"
        if self.job.workflow:  # what the jobs it needs left, and what it passes on
            env["JOB_INPUTS_DIR"] = inputs or str(self.dir / "inputs")
            env["JOB_OUTPUTS_FILE"] = f"{env['JOB_ARTIFACTS_DIR']}/outputs.json"
            env["JOB_WORKFLOW_RUN"] = self.job.workflow
        if self.job.spec.outputs:  # the folders it writes: datasets, models, volumes for the jobs after it
            env["JOB_OUTPUTS_DIR"] = outputs or f"{env['JOB_ARTIFACTS_DIR']}/{OUTPUTS_DIR}"
        for folder in sorted({m.folder for m in self.mounts}):  # JOB_DATASETS_DIR, JOB_MODELS_DIR
            env[f"JOB_{folder.upper()}_DIR"] = f"{mounts}/{folder}" if mounts is not None else str(self.dir / folder)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
        env.update(self.extra_env)
        env.update(self.job.spec.env)
        for expose in self.job.spec.expose:  # the service's choice: the proxy reaches only that port
            env[expose.variable] = str(self.ports.get(expose.name, expose.port))
        return env


@dataclass
class Usage:
    """A running job's resource use, as the telemetry samples it."""

    cpu_seconds: Optional[float] = None
    rss: Optional[int] = None  # bytes
    note: Optional[str] = None  # why there are no figures, once


@dataclass
class Availability:
    available: bool
    reason: Optional[str] = None
    details: dict[str, Any] = field(default_factory=dict)


class Execution(abc.ABC):
    """A job running in a backend."""

    #: JSON-able facts saved in history so that `Backend.reattach` can find the job again.
    state: dict[str, Any]
    _stopping: Optional[asyncio.Task] = None

    @abc.abstractmethod
    async def wait(self) -> Outcome:
        """Return once the job has ended and all of its output is in its log."""

    @abc.abstractmethod
    def done(self) -> bool:
        """Whether the job has ended (its outcome is known)."""

    async def release(self) -> None:  # noqa: B027 - nothing to release by default
        """Let the command run. `Backend.start` returns an execution that is held: it cannot
        run its command before the service has recorded it (so a server that dies in between
        never leaves a job that runs twice). Called once; also after a reattach."""

    async def running(self) -> bool:
        """Return True once the command runs, False if the execution ended without running it
        (at once, where the backend runs a released command at once)."""
        return not self.done()

    def waiting(self) -> Optional[str]:
        """Why the backend holds a released job back (e.g. Slurm's pending reason), or None."""
        return None

    async def process(self) -> Optional[int]:
        """The pid on this host whose life is the job's (its supervisor, its container's init),
        or None where there is none (a job on another machine)."""
        return None

    async def address(self, port: int) -> Optional[tuple[str, int]]:
        """Where the Jupyter host reaches the job's `port` (host, port), or None while it cannot
        (not running yet, or the backend serves no ports)."""
        return None

    def usage(self) -> Usage:
        """CPU seconds used so far and resident memory now, over all of the job's processes;
        None where the backend cannot tell. Blocking: runs in a worker thread."""
        return Usage()

    def terminate(self) -> None:  # noqa: B027 - an execution with nothing to stop
        """Ask the job to end (SIGTERM or the like). Blocking: runs in a worker thread."""

    def kill(self) -> None:  # noqa: B027
        """Force the job to end now. Blocking: runs in a worker thread."""

    async def stop(self, grace: float) -> None:
        """Terminate now and kill after `grace` seconds unless it ended. Idempotent: a second
        call neither signals again nor starts a second timer. Returns once terminate was sent."""
        if self._stopping is None and not self.done():
            self._terminated: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._stopping = asyncio.ensure_future(self._stop(grace))
        if self._stopping is not None:
            await asyncio.shield(self._terminated)

    async def _stop(self, grace: float) -> None:
        try:
            await asyncio.to_thread(self.terminate)
        finally:
            self._terminated.set_result(None)
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), grace)
        except asyncio.TimeoutError:
            await asyncio.to_thread(self.kill)

    def detach(self) -> None:
        """Stop following the job (the server is shutting down); the job itself runs on, and a
        stop under way is finished by the next server, which knows the stop reason."""
        if self._stopping is not None:
            self._stopping.cancel()


class EndedExecution(Execution):
    """An execution known to be over already (e.g. its container vanished)."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome
        self.state = {}

    async def wait(self) -> Outcome:
        return self.outcome

    def done(self) -> bool:
        return True


class _BackendMeta(abc.ABCMeta, type(LoggingConfigurable)):  # type: ignore[misc]
    """Lets a traitlets Configurable also be an ABC."""


class Backend(LoggingConfigurable, metaclass=_BackendMeta):
    """A way to run jobs. Configurable through traitlets (`c.LocalBackend....`)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: whether the job runs on the Jupyter host, so its GPUs come from the service's inventory
    host_gpus: ClassVar[bool] = True

    max_running = Int(
        0, help="Jobs this backend runs at once; more wait queued. 0: JobsApp.max_running decides."
    ).tag(config=True)
    strip_env = List(
        Unicode(),
        help="Variables of the server's environment that jobs never inherit, on top of the credentials "
        f"always kept out ({', '.join(CREDENTIALS)}).",
    ).tag(config=True)

    notebook_python = Unicode(
        "", help="The Python that runs notebook jobs without an image (it needs papermill and ipykernel); "
        "empty: the server's own. Jobs with an image use the image's python3."
    ).tag(config=True)

    def python(self, spec: JobSpec) -> str:
        """The interpreter that runs a notebook job's runner."""
        return "python3" if spec.image else (self.notebook_python or sys.executable)

    async def environment(self, ctx: JobContext, requirements: str, envs: Environments,
                          log: Callable[[bytes], None]) -> None:
        """Make the job run with these packages: by default a virtual environment on the host
        (in the shared folder, for a backend that has one)."""
        shared = self.jobs_root()
        venv = await asyncio.to_thread(envs.venv, self.python(ctx.job.spec), requirements, log,
                                       shared.parent / "envs" if shared else None)
        ctx.extra_env.update({"VIRTUAL_ENV": str(venv), "PATH": f"{venv}/bin:{os.environ.get('PATH', os.defpath)}"})

    def environment_list(self, envs: Environments) -> list[dict[str, Any]]:
        """Environments this backend keeps apart from the host's (a container engine's images)."""
        return []

    def collect_environments(self, envs: Environments, max_age: Optional[float],
                             max_size: Optional[int]) -> dict[str, int]:
        """Remove those of them unused past `max_age`, then beyond `max_size` (blocking)."""
        return {}

    def host_environment(self) -> dict[str, str]:
        """The server's environment without its credentials: what a host process may inherit."""
        drop = {*CREDENTIALS, *self.strip_env}
        return {k: v for k, v in os.environ.items() if k not in drop}

    @abc.abstractmethod
    async def availability(self) -> Availability:
        """Whether jobs can be submitted now, and if not, why (shown in /backends)."""

    def capabilities(self) -> Capabilities:
        """What this backend honours from a spec (shown in /backends)."""
        return Capabilities()

    async def validate(self, spec: JobSpec) -> None:
        """Raise SpecError for what this backend cannot run, before anything is recorded."""

    async def listen_ports(self, spec: JobSpec) -> dict[str, int]:
        """The port each of the spec's endpoints listens on: the declared ones, where every job
        has its own address (a container, a node); a backend sharing the host picks free ones."""
        return {expose.name: expose.port for expose in spec.expose}

    def jobs_root(self) -> Optional[Path]:
        """Where this backend's job folders must live (e.g. storage every node sees); None:
        the service's own jobs folder."""
        return None

    @abc.abstractmethod
    async def start(self, ctx: JobContext) -> Execution:
        """Set the job up, held (see `Execution.release`); raise BackendError with a user-facing
        message if it cannot start. A set-up left over from an interrupted start is replaced."""

    @abc.abstractmethod
    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        """Find a job this backend started before a restart. The returned execution's outcome
        says `lost` when the job is gone without a trace of how it ended."""

    async def close(self) -> None:
        """Release what the backend holds; running jobs are left running."""


class BackendError(RuntimeError):
    """A backend could not do what was asked; the message is meant for the user."""


def start_time(pid: int) -> Optional[int]:
    """A process's start time in clock ticks since boot (tells a reused pid apart); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])
