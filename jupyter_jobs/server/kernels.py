"""GPU notebook kernels (#28, work in progress): a kernel whose process is a job. Starting one
submits a kernel job (command: ipykernel with the connection file jupyter_client wrote; the
notebook's folder live, not a snapshot), which waits in the same queue and host-wide GPU pool as
any job, then runs holding its GPUs; shutting the kernel down, or its death, ends the job.

Why a provisioner: it is jupyter_client's extension point for where a kernel runs, so JupyterLab,
Notebook 7, nbclient and papermill use these kernels unchanged. Interrupts go as messages
(`interrupt_mode: message` in the kernel spec): no signal has to reach a process the server may
not own (a container, a Slurm node).

This first slice runs kernel jobs on the `local` backend (the connection file is on this host);
docker and Slurm need the connection file carried to the job and the ports published.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Int, Unicode

NAME = "jupyter-jobs-kernel"

#: the job service of this server and its root (set by the server extension while it runs)
SERVICE: dict[str, Any] = {}

#: what a kernel job's environment may take from what jupyter_client gives a kernel
_KEPT_ENV = ("JPY_SESSION_NAME", "JPY_PARENT_PID", "PYDEVD_DISABLE_FILE_VALIDATION")


class JobKernelProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A kernel run as a job of this server's service (see the module's docstring)."""

    backend = Unicode("local", config=True, help="the backend the kernel job runs on")
    gpus = Int(0, config=True, help="GPUs the kernel holds while it runs")
    image = Unicode("", config=True, help="the image of a container kernel")
    instance_type = Unicode("", config=True, help="an instance type the admin named: its GPUs, CPUs, memory")
    job_id: Optional[str] = None

    @property
    def has_process(self) -> bool:
        return self.job_id is not None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        service, root = SERVICE.get("service"), SERVICE.get("root")
        if service is None or root is None:
            raise RuntimeError("the jupyter_jobs service is not running in this server: no job kernels")
        cwd = Path(kwargs.get("cwd") or root).resolve()
        try:
            workspace = str(cwd.relative_to(root))
        except ValueError:
            workspace = ""
        env = {k: v for k, v in (kwargs.get("env") or {}).items() if k in _KEPT_ENV}
        env.update(SERVICE.get("kernel_env", {}))  # %%job and %job inside the kernel find this service
        notebook = env.get("JPY_SESSION_NAME")
        spec: dict[str, Any] = {
            "command": cmd, "backend": self.backend, "workspace": "" if workspace == "." else workspace,
            "live": True, "name": (f"kernel: {notebook}" if notebook else f"kernel {self.kernel_id}")[:200],
            "tags": ["kernel"], "env": env}
        if self.instance_type:  # its resources, backend and image, where the kernel spec sets none
            spec["instance_type"] = self.instance_type
        else:
            spec["resources"] = {"gpus": self.gpus}
        if self.image:
            spec["image"] = self.image
        job = await service.submit(spec, origin=f"kernel:{self.kernel_id}")
        self.job_id = job["id"]
        while True:  # the queue decides when: the notebook shows the kernel starting until then
            status, message = await self._status()
            if status == "running":
                return self.connection_info
            if status not in ("queued",):
                self.job_id = None
                raise RuntimeError(f"the kernel's job {job['id']} ended {status}: {message or ''}".rstrip(": "))
            await asyncio.sleep(0.1)

    async def _status(self) -> tuple[str, Optional[str]]:
        job = await SERVICE["service"].store.get(self.job_id)
        return (job.status.value, job.message) if job is not None else ("lost", "it is gone from the history")

    async def poll(self) -> Optional[int]:
        if self.job_id is None:
            return 0
        status, _ = await self._status()
        return None if status in ("queued", "running") else (0 if status == "succeeded" else 1)

    async def wait(self) -> Optional[int]:
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.1)
        self.job_id = None
        return code

    async def send_signal(self, signum: int) -> None:
        """Interrupts are messages (the kernel spec says so); a signal to end it ends its job."""
        if signum in (signal.SIGTERM, signal.SIGKILL) and self.job_id is not None:
            await self._cancel()

    async def kill(self, restart: bool = False) -> None:
        await self._cancel()

    async def terminate(self, restart: bool = False) -> None:
        await self._cancel()

    async def _cancel(self) -> None:
        service = SERVICE.get("service")
        if service is None or self.job_id is None:
            return
        try:
            await service.cancel(self.job_id, wait=5.0)
        except Exception:  # already over (JobConflict): nothing left to stop
            pass

    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info["job_id"] = self.job_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.job_id = provisioner_info.get("job_id")


def kernel_spec(name: str, display_name: str, backend: str, gpus: int, image: str = "") -> dict[str, Any]:
    """A kernel.json for a job kernel: ipykernel under the server's Python, interrupts by message."""
    config: dict[str, Any] = {"backend": backend, "gpus": gpus}
    if image:
        config["image"] = image
    return {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": display_name, "language": "python", "interrupt_mode": "message",
            "metadata": {"kernel_provisioner": {"provisioner_name": NAME, "config": config},
                         "jupyter_jobs": {"name": name}}}


def write_specs(folder: Path, gpus_on_host: int, instance_types: dict[str, dict[str, Any]]) -> Path:
    """The kernels this server offers, as kernel spec folders under `folder`: one on this host,
    one with a GPU where the host has GPUs, one per instance type that runs on this host."""
    specs = {"jupyter-jobs-local": kernel_spec("jupyter-jobs-local", "Python 3 - job (local)", "local", 0)}
    if gpus_on_host:
        specs["jupyter-jobs-local-gpu"] = kernel_spec("jupyter-jobs-local-gpu", "Python 3 - 1 GPU on this host",
                                                      "local", 1)
    for type_name, fields in instance_types.items():
        if fields.get("backend", "local") != "local":
            continue  # container and Slurm kernels: the next slice
        name = f"jupyter-jobs-type-{type_name}"
        spec = kernel_spec(name, f"Python 3 - {type_name}", "local", 0)
        spec["metadata"]["kernel_provisioner"]["config"] = {"instance_type": type_name}
        specs[name] = spec
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("jupyter-jobs-*/kernel.json"):  # an instance type no longer configured
        if old.parent.name not in specs:
            old.unlink()
            old.parent.rmdir()
    for name, spec in specs.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder
