"""The Jupyter Server extension: configuration and wiring only."""

from __future__ import annotations

import asyncio
import gc
import secrets
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import KernelProvisionerFactory
from jupyter_server.extension.application import ExtensionApp

from ..app.compose import build
from ..app.config import ENV_ROOT, ENV_TOKEN, ENV_URL, JobsConfig
from . import kernel_specs, kernels, provisioner
from .datasets import handlers as dataset_handlers
from .definitions import handlers as definition_handlers
from .deployments import handlers as deployment_handlers
from .handlers import handlers
from .proxy import EndpointHandler, own_origins
from .proxy import handlers as proxy_handlers
from .schedules import handlers as schedule_handlers


class JobsApp(JobsConfig, ExtensionApp):
    """jupyter_jobs: run a notebook folder's code as a job, locally, in containers or on Slurm."""

    name = "jupyter_jobs"
    extension_url = "/jupyter-jobs/jobs"
    load_other_extensions = True

    def initialize_settings(self) -> None:
        self.platform = build(self, Path(self.serverapp.root_dir).expanduser())
        self.service = self.platform.jobs
        self.settings["jupyter_jobs_platform"] = self.platform
        self.settings["jupyter_jobs_service"] = self.service  # the core alone, for code that wants only jobs
        # kernels this server starts inherit these and find the service with no set-up
        self.settings["jupyter_jobs_kernel_token"] = self.kernel_token = secrets.token_urlsafe(32)
        self._export_for_kernels()
        self._offer_kernels()
        self.log.info("jupyter_jobs: data in %s, backends %s", self.data_dir, ", ".join(self.service.backends))

    def _offer_kernels(self) -> None:
        """Job kernels (kernels.py): their specs in a folder of ours the kernel spec manager reads."""
        kernels.SERVICE.update(service=self.service, root=Path(self.serverapp.root_dir).expanduser().resolve(),
                               kernel_env=provisioner.KERNEL_ENV)
        kernel_specs.check_configured(self.kernels, self.service.backends, set(self.instance_types))
        folder = kernel_specs.write_specs(Path(self.data_dir) / "kernels", self._kernel_offers({"local"}))
        dirs = self.serverapp.kernel_spec_manager.kernel_dirs
        if str(folder) not in dirs:
            dirs.append(str(folder))
        factory = KernelProvisionerFactory.instance()
        if kernel_specs.PROVISIONER not in factory.provisioners:  # no entry point: a source checkout
            factory.provisioners[kernel_specs.PROVISIONER] = EntryPoint(
                name=kernel_specs.PROVISIONER, value="jupyter_jobs.server.kernels:JobKernelProvisioner",
                group="jupyter_client.kernel_provisioners")

    def _export_for_kernels(self) -> None:
        """Kernels (only kernels) get the service's URL and credential, through a provisioner."""
        provisioner.KERNEL_ENV.update({
            ENV_URL: self.serverapp.connection_url,
            ENV_TOKEN: self.kernel_token,
            ENV_ROOT: str(Path(self.serverapp.root_dir).expanduser().resolve()),
        })
        factory = KernelProvisionerFactory.instance()
        if factory.default_provisioner_name == "local-provisioner":  # another one configured: leave it
            factory.default_provisioner_name = provisioner.NAME

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers + schedule_handlers + dataset_handlers + definition_handlers + deployment_handlers
                             + proxy_handlers)
        if self.endpoint_url:  # each endpoint on its own origin: requests for `{key}.<host>` are its alone
            hosts = own_origins(self.endpoint_url)
            web_app = self.serverapp.web_app
            web_app.add_handlers(hosts.pattern, [(r"/.*", EndpointHandler, {"name": self.name, "host": hosts})])
            rules = web_app.default_router.rules
            rules.insert(0, rules.pop(-2))  # before Jupyter's own rules, which match any host and any path

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self._export_for_kernels()  # the port is final now
        await self.platform.start()
        gc.freeze()  # the server's start-up objects live on: collections no longer walk them
        self.platform.jobs.spawn(self._write_kernel_specs())

    async def _write_kernel_specs(self) -> None:
        """The kernels offered by default, once the server knows which backends answer (those
        on this host were offered at start-up)."""
        if self.kernels:
            return  # as configured: written at start-up already
        try:
            offers = self._kernel_offers(await kernel_specs.answering(self.service.backends))
            await asyncio.to_thread(kernel_specs.write_specs, Path(self.data_dir) / "kernels", offers)
        except Exception:  # the server runs on; its jobs do not need the kernels
            self.log.exception("jupyter_jobs: the job kernels could not be offered")

    async def _stop_job_kernels(self) -> None:
        """No kernel job outlives its server (nothing could reach it): they are shut down before
        the service stops, as the server shuts kernels down only after its extensions."""
        km = self.serverapp.kernel_manager
        ours = [k for k in list(km.list_kernel_ids())
                if isinstance(getattr(km.get_kernel(k), "provisioner", None), kernels.JobKernelProvisioner)]
        await asyncio.gather(*(km.shutdown_kernel(k, now=True) for k in ours), return_exceptions=True)

    def _kernel_offers(self, answering: set[str]) -> dict[str, dict[str, Any]]:
        return self.kernels or kernel_specs.default_offers(self.service.backends, answering & set(
            self.service.backends), self.service.gpus.total, self.instance_types)

    async def stop_extension(self) -> None:
        await self._stop_job_kernels()
        provisioner.KERNEL_ENV.clear()
        kernels.SERVICE.clear()
        factory = KernelProvisionerFactory.instance()
        if factory.default_provisioner_name == provisioner.NAME:
            factory.default_provisioner_name = "local-provisioner"
        await self.platform.close()
