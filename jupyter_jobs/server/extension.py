"""The Jupyter Server extension: configuration and wiring only."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Unicode, Union, default, import_item

from ..backends import BUILTIN_BACKENDS, Backend
from ..gpus import GPU, GPUAllocator, discover
from ..kernel.client import ENV_TOKEN, ENV_URL
from ..manager import JobManager
from ..store import Store
from ..workspace import SnapshotStore
from .handlers import handlers


class JobsApp(ExtensionApp):
    """jupyter_jobs: run a notebook folder's code as a job, locally, in containers or on Slurm."""

    name = "jupyter_jobs"
    extension_url = "/jupyter-jobs/jobs"
    load_other_extensions = True

    data_dir = Unicode(
        help="Where job history (SQLite), logs, artifacts and workspace snapshots are kept. "
        "Default: <jupyter data dir>/jupyter_jobs."
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_jobs")

    storage_dir = Unicode(
        "", help="The persistent storage folder jobs share ($JOB_STORAGE_DIR). Default: <data_dir>/storage."
    ).tag(config=True)
    default_backend = Unicode("local", help="Backend for jobs whose spec names none.").tag(config=True)
    backends = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Extra or replacement backends: name -> import path of a Backend subclass, "
        "e.g. {'local': 'jupyter_jobs.backends.local.LocalBackend'}.",
    ).tag(config=True)
    disabled_backends = List(Unicode(), help="Built-in backends to leave out.").tag(config=True)
    max_snapshot_size = Int(1 << 30, help="Largest workspace snapshot, in bytes.").tag(config=True)
    max_running = Int(0, help="Jobs running at once per backend when the backend sets no limit; 0: none.").tag(
        config=True
    )
    kill_grace = Float(10.0, help="Seconds between asking a job to stop (SIGTERM) and killing it.").tag(config=True)
    gpus = Union(
        [Int(), List(Dict())],
        default_value=-1,
        help="GPU inventory: -1 discovers NVIDIA GPUs with NVML; a number N declares devices 0..N-1; "
        "a list of {'index': i, 'name': ...} declares them one by one.",
    ).tag(config=True)
    gpu_share = Int(1, help="How many jobs may use one GPU at once.").tag(config=True)

    def _inventory(self) -> list[GPU]:
        if isinstance(self.gpus, int):
            if self.gpus < 0:
                return discover()
            return [GPU(index=i, name="configured GPU") for i in range(self.gpus)]
        return [GPU(index=int(g["index"]), name=str(g.get("name", "configured GPU")), memory=g.get("memory"))
                for g in self.gpus]

    def _make_backends(self) -> dict[str, Backend]:
        paths = {n: p for n, p in BUILTIN_BACKENDS.items() if n not in self.disabled_backends}
        paths.update(self.backends)
        made: dict[str, Backend] = {}
        for name, path in paths.items():
            cls = import_item(path)
            made[name] = cls(parent=self, log=self.log)
        return made

    def make_manager(self, root_dir: Path) -> JobManager:
        """The job service as configured; the embedded (plain IPython) service uses it too."""
        data = Path(self.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        manager = JobManager(
            store=Store(data / "jobs.db"),
            snapshots=SnapshotStore(data, max_bytes=self.max_snapshot_size),
            root_dir=root_dir,
            jobs_dir=data / "jobs",
            storage_dir=Path(self.storage_dir) if self.storage_dir else data / "storage",
            backends=self._make_backends(),
            default_backend=self.default_backend,
            gpus=GPUAllocator(self._inventory(), share=self.gpu_share),
            kill_grace=self.kill_grace,
            max_running=self.max_running,
        )
        if self.default_backend not in manager.backends:
            raise ValueError(f"JobsApp.default_backend {self.default_backend!r} is not a configured backend")
        return manager

    def initialize_settings(self) -> None:
        self.manager = self.make_manager(Path(self.serverapp.root_dir).expanduser())
        self.settings["jupyter_jobs_manager"] = self.manager
        # kernels this server starts inherit these and find the service with no set-up
        self.settings["jupyter_jobs_kernel_token"] = self.kernel_token = secrets.token_urlsafe(32)
        self._export_for_kernels()
        self.log.info("jupyter_jobs: data in %s, backends %s", self.data_dir, ", ".join(self.manager.backends))

    def _export_for_kernels(self) -> None:
        os.environ[ENV_URL] = self.serverapp.connection_url
        os.environ[ENV_TOKEN] = self.kernel_token
        os.environ["JUPYTER_JOBS_ROOT"] = str(Path(self.serverapp.root_dir).expanduser().resolve())

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self._export_for_kernels()  # the port is final now
        await self.manager.start()

    async def stop_extension(self) -> None:
        await self.manager.stop()
        await asyncio.to_thread(self.manager.store.close)
        self.manager.snapshots.close()
