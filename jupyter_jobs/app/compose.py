"""The composition root: the one place that builds the job core, its backends and storage, and
plugs every feature in. A new feature is added here (and in `Platform`), never in the core's
constructor."""

from __future__ import annotations

import dataclasses
import getpass
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets import import_item

from ..backends import BUILTIN_BACKENDS, Backend
from ..domain.instance_types import InstanceTypes
from ..domain.policy import Policy
from ..endpoints.endpoints import Endpoints
from ..environments.git import GitSources
from ..environments.venvs import Environments
from ..datasets.datasets import DATASET, MODEL, Datasets
from ..deployments.deployments import Deployments
from ..jobs.gpupool import HostGPUPool, PoolError
from ..jobs.gpus import GPU, GPUAllocator, discover
from ..jobs.service import JobService
from ..schedules.schedules import Schedules
from ..storage.files import private_dir, secret_file
from ..storage.snapshots import SnapshotStore
from ..storage.store import Store
from ..telemetry.features import JobSampling, WebhookEvents
from ..telemetry.host import HostView
from ..telemetry.prometheus import JobsMetrics
from ..telemetry.webhooks import Webhooks
from ..workflows.definitions import Definitions
from ..workflows.runs import WorkflowRuns
from .config import JobsConfig


@dataclass
class Platform:
    """The job core with its features plugged in: what every face is handed."""

    jobs: JobService
    runs: WorkflowRuns
    schedules: Schedules
    endpoints: Endpoints
    webhooks: WebhookEvents
    sampling: JobSampling
    host: HostView
    metrics: JobsMetrics
    datasets: Datasets
    models: Datasets
    definitions: Definitions
    deployments: Deployments

    async def start(self) -> None:
        await self.jobs.start()

    async def close(self) -> None:
        await self.jobs.close()


def plug_features(core: JobService, *, webhooks: Webhooks, metrics_interval: float, endpoint_secret: bytes,
                  endpoint_url: str = "", nvml: Any = None, host_admins: tuple[str, ...] = ("root",),
                  host_metrics_interval: float = 10.0) -> Platform:
    """Plug each feature into `core`: its policies, then its life (started in this order)."""
    runs = WorkflowRuns(core)  # first: its max_parallel holds before the queue's first pass
    schedules = Schedules(core)
    endpoints = Endpoints(core.runners, core.spawn, endpoint_secret, endpoint_url)
    hooks = WebhookEvents(core, webhooks)
    sampling = JobSampling(core, metrics_interval, nvml, idle=lambda: core.gpus.policy().limits(core.gpus.user).idle)
    host = HostView(core, core.gpus, list(host_admins), nvml, queued=lambda: _queued(core),
                    host_gpus=lambda name: name in core.backends and core.backends[name].host_gpus)
    metrics = JobsMetrics(core, host, host_metrics_interval)
    keep = core.housekeeper
    datasets, models = (Datasets(core, core.snapshots, partial(_cache, core, kind.field), getpass.getuser(), kind,
                                 core.get, tuple(core.backends), keep.retention.versions_max_age, keep.interval)
                        for kind in (DATASET, MODEL))
    for policy in (runs, endpoints, hooks, datasets, models):
        core.add_policy(policy)
    deployments = Deployments(core, endpoints)
    for feature in (runs, schedules, endpoints, hooks, sampling, metrics, datasets, models, deployments):
        core.plug(feature)
    definitions = Definitions(core.store, runs, core.resolve_workspace)
    return Platform(core, runs, schedules, endpoints, hooks, sampling, host, metrics, datasets, models, definitions,
                    deployments)


def _cache(core: JobService, folder: str, backend: str) -> Path:
    """Where versions are written out for a backend's jobs: its shared folder (Slurm), else the
    data folder ("": this host's, for downloads)."""
    shared = core.backends[backend].jobs_root() if backend else None
    return (shared or core.env.jobs_dir).parent / folder


async def _queued(core: JobService) -> list[dict[str, Any]]:
    """This server's queued jobs, each with why it waits (the host view without a pool)."""
    return (await core.list(status="queued", limit=500))["jobs"]


def build(config: JobsConfig, root_dir: Path) -> Platform:
    """The platform as configured, for jobs whose workspaces lie under `root_dir`."""
    data = private_dir(Path(config.data_dir))  # history and logs may hold secrets
    backends = _backends(config)
    if config.default_backend not in backends:
        raise ValueError(f"JobsApp.default_backend {config.default_backend!r} is not a configured backend")
    core = JobService(
        store=Store(data / "jobs.db"), snapshots=SnapshotStore(data, max_bytes=config.max_snapshot_size),
        root_dir=root_dir, jobs_dir=data / "jobs",
        storage_dir=Path(config.storage_dir) if config.storage_dir else data / "storage",
        backends=backends, default_backend=config.default_backend, gpus=_gpus(config, data),
        instance_types=InstanceTypes(config.instance_types), git=GitSources(data / "git", timeout=config.git_timeout),
        environments=Environments(data / "envs", index_url=config.pip_index_url, find_links=config.pip_find_links),
        kill_grace=config.kill_grace, max_running=config.max_running, max_log_size=config.max_log_size,
        retention=config.retention, housekeeping_interval=config.housekeeping_interval,
        strict_specs=config.strict_specs, max_metrics_size=config.max_metrics_size,
        default_requirements=config.default_requirements,
    )
    webhooks = Webhooks(config.webhooks, attempts=config.webhook_attempts, backoff=config.webhook_backoff)
    return plug_features(core, webhooks=webhooks, metrics_interval=config.metrics_interval,
                         endpoint_secret=secret_file(data / "endpoints.key"), endpoint_url=config.endpoint_url,
                         host_admins=tuple(config.host_admins), host_metrics_interval=config.host_metrics_interval)


def _inventory(config: JobsConfig) -> list[GPU]:
    if isinstance(config.gpus, int):
        if config.gpus < 0:
            return discover()
        return [GPU(index=i, name="configured GPU") for i in range(config.gpus)]
    return [GPU(index=int(g["index"]), name=str(g.get("name", "configured GPU")), memory=g.get("memory"))
            for g in config.gpus]


def _gpus(config: JobsConfig, data: Path) -> GPUAllocator:
    inventory = _inventory(config)
    policy = None  # this server's own rule, where the host has none (checked by the config already)
    if config.gpu_policy or config.gpus_per_user:
        policy = Policy.from_json(config.gpu_policy or {})
        if config.gpus_per_user and policy.default.gpus is None:
            policy = dataclasses.replace(policy, default=dataclasses.replace(policy.default, gpus=config.gpus_per_user))
    pool = None
    if inventory and config.gpu_pool_dir:
        try:
            pool = HostGPUPool(Path(config.gpu_pool_dir), [g.index for g in inventory], config.gpu_share,
                               service_id=str(data.resolve()), policy=policy)
        except PoolError as exc:
            raise ValueError(str(exc)) from None
    return GPUAllocator(inventory, share=config.gpu_share, pool=pool, policy=policy)


def _backends(config: JobsConfig) -> dict[str, Backend]:
    paths = {n: p for n, p in BUILTIN_BACKENDS.items() if n not in config.disabled_backends}
    paths.update(config.backends)
    return {name: import_item(path)(parent=config, log=config.log) for name, path in paths.items()}
