"""What a job's container is made of: mounts, limits, safety settings and environment, from the
docker backend's settings and the job. Pure: nothing here talks to the engine."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any, Protocol

from .base import OUTPUTS_DIR, JobContext


class ContainerSettings(Protocol):
    """The admin's container settings (DockerBackend's traits)."""

    storage_volume: str
    datasets: dict[str, str]
    pids_limit: int
    network_mode: str
    gpu_request: str
    cdi_kind: str
    shm_size: str
    runtime: str


def _mounts(settings: ContainerSettings, ctx: JobContext, local: bool) -> list[Any]:
    from docker.types import Mount

    mounts = []
    if local:  # an engine on this host: bind the job's folders, no copies
        mounts += [Mount("/workspace", str(ctx.workspace.resolve()), type="bind"),
                   Mount("/artifacts", str(ctx.artifacts.resolve()), type="bind"),
                   Mount("/metrics", str(ctx.metrics.resolve()), type="bind")]
    if local and ctx.job.spec.outputs:  # the folders it writes, kept with its artifacts
        mounts.append(Mount("/outputs", str((ctx.artifacts / OUTPUTS_DIR).resolve()), type="bind"))
    if local:  # what the jobs it needs left, read-only
        mounts += [Mount(f"/inputs/{folder}", str(artifacts.resolve()), type="bind", read_only=True)
                   for folder, artifacts in ctx.inputs.items()]
    if settings.storage_volume:
        mounts.append(Mount("/storage", settings.storage_volume, type="volume"))
    elif local:
        mounts.append(Mount("/storage", str(ctx.storage.resolve()), type="bind"))
    for source, target in settings.datasets.items():
        mounts.append(Mount(target, source, type="bind" if source.startswith("/") else "volume", read_only=True))
    if local:  # dataset and model versions the job reads: their files bound read-only, never copied
        mounts += [Mount(m.in_container, str(m.source.resolve()), type="bind", read_only=True) for m in ctx.mounts]
    return mounts


def _host(settings: ContainerSettings, ctx: JobContext, local: bool) -> dict[str, Any]:
    """Host settings: never privileged, no new privileges, an init that passes signals on."""
    from docker.types import DeviceRequest

    resources = ctx.job.spec.resources
    host: dict[str, Any] = {
        "mounts": _mounts(settings, ctx, local), "init": True, "privileged": False,
        "security_opt": ["no-new-privileges"], "pids_limit": settings.pids_limit, "network_mode": settings.network_mode,
    }
    if resources.cpus:
        host["nano_cpus"] = int(resources.cpus * 1e9)
    if resources.memory_bytes:
        host["mem_limit"] = host["memswap_limit"] = resources.memory_bytes
    if ctx.ports:  # published on the host's loopback only, on a port the engine picks
        host["port_bindings"] = {port: ("127.0.0.1", None) for port in ctx.ports.values()}
    if ctx.gpus and settings.gpu_request == "device_requests":
        host["device_requests"] = [DeviceRequest(device_ids=[str(i) for i in ctx.gpus], capabilities=[["gpu"]])]
    if ctx.gpus and settings.gpu_request == "cdi":
        host["devices"] = cdi_devices(settings.cdi_kind, ctx.gpus)
    if settings.shm_size:
        host["shm_size"] = settings.shm_size
    if settings.runtime:
        host["runtime"] = settings.runtime
    return host


def cdi_devices(kind: str, gpus: list[int]) -> list[dict[str, str]]:
    """The host's GPUs as CDI devices (`nvidia.com/gpu=0`), in the Docker API's device list: the
    name as the host path, nothing else, which is how Podman's compat API passes a name on to CDI
    (Docker 25+ takes the same with its CDI feature on)."""
    return [{"PathOnHost": f"{kind}={i}", "PathInContainer": "", "CgroupPermissions": ""} for i in gpus]


def _environment(ctx: JobContext, local: bool) -> dict[str, str]:
    env = ctx.env(artifacts="/artifacts", storage="/storage", metrics="/metrics", inputs="/inputs", mounts="",
                  outputs="/outputs" if local else None)  # a remote engine's are copied back with /artifacts
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the container sees only its own devices, numbered from 0
    if ctx.gpus:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, ctx.gpus))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(ctx.gpus)))
    return env


def container_settings(
    settings: ContainerSettings, ctx: JobContext, local: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The host config arguments and the environment of the job's container."""
    return _host(settings, ctx, local), _environment(ctx, local)


def workspace_tar(workspace: Path) -> bytes:
    """The workspace (and empty artifacts, metrics and storage folders) for an engine on another host."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(workspace, arcname="workspace")
        for name in ("artifacts", "metrics", "storage"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o777
            tar.addfile(info)
    return buf.getvalue()
