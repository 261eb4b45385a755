"""Kernels of this server find the job service with no configuration: a kernel provisioner
(jupyter_client's extension point for launching kernels) adds the service's URL and a kernel
credential to each kernel's environment, and only there: terminals and other processes the
server starts never see the credential."""

from __future__ import annotations

from typing import Any

from jupyter_client.provisioning import LocalProvisioner

NAME = "jupyter-jobs-provisioner"

#: set by the server extension once it knows its URL; empty: nothing is added
KERNEL_ENV: dict[str, str] = {}


class JobsKernelProvisioner(LocalProvisioner):  # type: ignore[misc]
    """The local provisioner, plus the job service's variables in the kernel's environment."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"] = {**KERNEL_ENV, **kwargs.get("env", {})}  # a kernel given its own service keeps it
        return kwargs
