"""Job kernels: a notebook kernel whose process is a job. Starting one submits a kernel job
(ipykernel, the notebook's folder live rather than a snapshot), which waits in the same queue and
host-wide GPU pool as any job, then runs holding its GPUs on its backend: a local process, a
container, a Slurm node. Shutting the kernel down, or its death, ends the job.

Why a provisioner: it is jupyter_client's extension point for where a kernel runs, so JupyterLab,
Notebook 7, nbclient and papermill use these kernels unchanged. Interrupts go as messages
(`interrupt_mode: message`): no signal has to reach a process the server may not own.

The kernel's five sockets are the job's `internal` ports: published like an endpoint's (on
127.0.0.1 for a container, the node's address on Slurm) but never proxied. The connection key
goes to the job as a variable the service never records (see kernel_launch.py), so no history
row, log, reply or file in the notebook's folder holds it.
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
from traitlets import Int, List, Unicode

from ..domain.job import KERNEL_JOB_ORIGIN
from ..domain.spec import JobSpec

PORTS = ("shell", "iopub", "stdin", "control", "hb")
LAUNCHER = Path(__file__).with_name("kernel_launch.py")

#: the job service of this server and its root (set by the server extension while it runs)
SERVICE: dict[str, Any] = {}

#: what a kernel job's environment may take from what jupyter_client gives a kernel
_KEPT_ENV = ("JPY_SESSION_NAME", "JPY_PARENT_PID", "PYDEVD_DISABLE_FILE_VALIDATION")


class JobKernelProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A kernel run as a job of this server's service (see the module's docstring)."""

    backend = Unicode("", config=True, help="the backend the kernel job runs on (default: the instance "
                      "type's, else the server's default backend)")
    gpus = Int(0, config=True, help="GPUs the kernel holds while it runs")
    image = Unicode("", config=True, help="the image of a container kernel")
    instance_type = Unicode("", config=True, help="an instance type the admin named: its GPUs, CPUs, memory")
    requirements = List(Unicode(), config=True, help="packages the kernel runs with (an environment, as for jobs)")
    job_id: Optional[str] = None
    service: Any = None  # the service its job is in (kept: it outlives SERVICE at a server's stop)

    @property
    def has_process(self) -> bool:
        return self.job_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """As for a local kernel; the ports jupyter_client picks are those the job asks for. A
        restart starts from the loopback address again (a Slurm kernel had its node's)."""
        km = self.parent
        if km is not None and km.ip != "127.0.0.1":
            km.ip = "127.0.0.1"
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        service, root = SERVICE.get("service"), SERVICE.get("root")
        if service is None or root is None:
            raise RuntimeError("the jupyter_jobs service is not running in this server: no job kernels")
        self.service = service
        spec = self._spec(cmd, kwargs, root)
        backend = service.backends[(await service.check(spec)).backend]
        contained = backend.capabilities().containers and not backend.capabilities().nodes
        bind = "node" if backend.capabilities().nodes else "0.0.0.0" if contained else "127.0.0.1"
        python = "python3" if contained else sys.executable  # the image's, or the server's own
        update: dict[str, Any] = {}
        if bind == "127.0.0.1":  # a process of this user on this host: %%job inside finds this service
            update["env"] = {**spec.env, **SERVICE.get("kernel_env", {})}
        argv = [python] + [a.replace(self.parent.connection_file, "{connection_file}") for a in cmd[1:]]
        spec = spec.model_copy(update={**update, "command": [python, "-c", LAUNCHER.read_text(), *argv]})
        info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.connection_info.items()
                if k in ("key", "signature_scheme", "transport", "kernel_name")}
        handed = json.dumps({**info, "bind": bind, "file": f"kernel-{self.kernel_id}.json"})
        job = await service.submit_spec(spec, origin=f"{KERNEL_JOB_ORIGIN}{self.kernel_id}",
                                        unrecorded_env=lambda job: {"JUPYTER_JOBS_KERNEL": handed})
        self.job_id = job.id
        while (status := await self._status())[0] == "queued":  # the notebook shows "starting" meanwhile
            await asyncio.sleep(0.1)
        if status[0] == "running" and (found := await self._addresses()) is not None:
            return {**self.connection_info, **found}
        ended = await self._status()
        self.job_id = None
        said = await _last_words(service, job.id)
        raise RuntimeError(f"the kernel's job {job.id} ended {ended[0]}: {ended[1] or ''}"
                           + (f"; it said: {said}" if said else f" (its log: jupyter jobs logs {job.id})"))

    def _spec(self, cmd: list[str], kwargs: dict[str, Any], root: Path) -> JobSpec:
        """The kernel job as recorded: the notebook's folder live, its ports, no connection key."""
        cwd = Path(kwargs.get("cwd") or root).resolve()
        workspace = str(cwd.relative_to(root)) if cwd.is_relative_to(root) else ""
        env = {k: v for k, v in (kwargs.get("env") or {}).items() if k in _KEPT_ENV}
        notebook = env.get("JPY_SESSION_NAME")
        if notebook and Path(notebook).is_absolute() and Path(notebook).is_relative_to(root):
            notebook = env["JPY_SESSION_NAME"] = str(Path(notebook).relative_to(root))  # as Jupyter shows it
        fields: dict[str, Any] = {
            "command": cmd, "backend": self.backend or None, "workspace": "" if workspace == "." else workspace,
            "live": True, "name": (f"kernel: {notebook}" if notebook else f"kernel {self.kernel_id}")[:200],
            "tags": ["kernel"], "env": env,
            "expose": [{"name": f"kernel-{p}", "port": self.connection_info[f"{p}_port"], "internal": True}
                       for p in PORTS]}
        if self.instance_type:  # its resources, backend and image, where the kernel spec sets none
            fields["instance_type"] = self.instance_type
        else:
            fields["resources"] = {"gpus": self.gpus}
        if self.image:
            fields["image"] = self.image
        if self.requirements:
            fields["requirements"] = list(self.requirements)
        return JobSpec.model_validate(fields)

    async def _addresses(self) -> Optional[dict[str, Any]]:
        """Where this host reaches the running kernel's sockets (ip and the five ports), once its
        backend can say; None if the job ends first."""
        while (runner := self.service.runners().get(self.job_id)) is not None:
            if runner.execution is not None and runner.execution.done():
                return None
            found: dict[str, Any] = {}
            for name in PORTS:
                port = runner.ports.get(f"kernel-{name}")
                address = await runner.execution.address(port) if runner.execution and port else None
                if address is None:
                    break
                found["ip"], found[f"{name}_port"] = address
            else:
                return found
            await asyncio.sleep(0.1)
        return None

    async def _status(self) -> tuple[str, Optional[str]]:
        if self.service is None:
            return "lost", "the server's job service is gone"
        job = await self.service.store.get(self.job_id)
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
        if self.service is None or self.job_id is None:
            return
        try:
            await self.service.cancel(self.job_id, wait=5.0)
        except Exception:  # already over (JobConflict): nothing left to stop
            pass

    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info["job_id"] = self.job_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.job_id = provisioner_info.get("job_id")


async def _last_words(service: Any, job_id: str) -> str:
    """The last line a job that ended wrote to stderr (why a kernel could not start), if any."""
    text = ""
    try:
        async for chunk in service.logs(job_id):
            if chunk.get("stream") == "stderr":
                text = (text + chunk.get("text", ""))[-2000:]
    except Exception:  # no log: nothing to add
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
