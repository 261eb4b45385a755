"""Which job kernels a server offers, as kernel specs in a folder the kernel spec manager reads:
what the admin configured (`c.JobsApp.kernels`), else one per available backend (a GPU where the
host has GPUs) and one per instance type. Named after what they run on, so the launcher and
"Change kernel" say it ("Python 3 - 1 GPU (docker, pytorch-cuda)")."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import ValidationError

from ..domain.errors import SpecError
from ..domain.spec import JobSpec

PROVISIONER = "jupyter-jobs-kernel"
PREFIX = "jupyter-jobs-"
#: what one offered kernel may set: where it runs and what it holds (the provisioner's traits)
FIELDS = {"display_name", "backend", "image", "gpus", "instance_type", "requirements"}


class KernelConfigError(ValueError):
    """A configured kernel that cannot work: the server stops at start with this reason."""


def check_configured(kernels: dict[str, dict[str, Any]], backends: dict[str, Any], instance_types: set[str]) -> None:
    """Refuse, naming the kernel and the field, what could never start."""
    for name, given in kernels.items():
        where = f"c.JobsApp.kernels[{name!r}]"
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,60}", name):
            raise KernelConfigError(f"{where}: a kernel's name is a-z, 0-9, '.', '_' and '-'")
        if unknown := set(given) - FIELDS:
            raise KernelConfigError(f"{where}: unknown {sorted(unknown)}; a kernel sets {', '.join(sorted(FIELDS))}")
        if given.get("backend") and given["backend"] not in backends:
            raise KernelConfigError(f"{where}: backend {given['backend']!r} is not one of this server's "
                                    f"({', '.join(backends)})")
        if given.get("instance_type") and given["instance_type"] not in instance_types:
            raise KernelConfigError(f"{where}: instance_type {given['instance_type']!r} is not configured "
                                    f"(known: {', '.join(sorted(instance_types)) or 'none'})")
        fields = {k: v for k, v in given.items() if k in ("backend", "image", "instance_type", "requirements")}
        try:
            JobSpec.model_validate({**fields, "command": "true", "resources": {"gpus": given.get("gpus", 0)}})
        except ValidationError as exc:
            raise KernelConfigError(f"{where}: {SpecError.from_validation(exc)}") from None


def _title(backend: str, image: str, gpus: int, on_host: bool) -> str:
    held = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else ""
    if on_host:
        return f"Python 3 - {held} on this host" if held else "Python 3 - job on this host"
    where = ", ".join(part for part in (backend, image.rsplit("/", 1)[-1]) if part)
    return f"Python 3 - {held} ({where})" if held else f"Python 3 - {where}"


def default_offers(backends: dict[str, Any], answering: set[str], gpus_on_host: int,
                   instance_types: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One kernel per backend that answers (its default image; a GPU where the host has some),
    and one per instance type."""
    offers: dict[str, dict[str, Any]] = {}
    for name, backend in backends.items():
        caps = backend.capabilities()
        image = getattr(backend, "default_image", "") or ""
        if name not in answering or (caps.containers and not caps.nodes and not image):
            continue  # a container backend with no default image has nothing to run a kernel in
        offers[name] = {"backend": name, "image": image, "gpus": 0}
        if gpus_on_host and caps.gpus and not caps.nodes:  # Slurm's GPUs are the cluster's: configure them
            offers[f"{name}-gpu"] = {"backend": name, "image": image, "gpus": 1}
    for type_name, fields in instance_types.items():
        where = f" ({fields['backend']})" if fields.get("backend") else ""
        offers[f"type-{type_name}"] = {"instance_type": type_name, "display_name": f"Python 3 - {type_name}{where}"}
    return offers


async def answering(backends: dict[str, Any]) -> set[str]:
    """The backends whose engine or cluster answers now."""
    async def up(backend: Any) -> bool:
        try:
            return bool((await asyncio.wait_for(backend.availability(), 15)).available)
        except Exception:  # an engine that does not answer offers no kernel
            return False
    found = await asyncio.gather(*(up(b) for b in backends.values()))
    return {name for name, ok in zip(backends, found) if ok}


def kernel_spec(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """A kernel.json for a job kernel: ipykernel (the server's Python, or the image's), interrupts
    by message, the provisioner told where it runs."""
    config = {k: v for k, v in given.items() if k != "display_name" and v not in ("", None)}
    backend = given.get("backend") or ""
    title = given.get("display_name") or _title(backend, given.get("image") or "", int(given.get("gpus") or 0),
                                                 on_host=backend == "local")
    return {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": title, "language": "python", "interrupt_mode": "message",
            "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER, "config": config},
                         "jupyter_jobs": {"name": name}}}


def write_specs(folder: Path, offers: dict[str, dict[str, Any]]) -> Optional[Path]:
    """The offered kernels as kernel spec folders `jupyter-jobs-<name>` under `folder` (those no
    longer offered removed). Blocking: run in a thread."""
    specs = {f"{PREFIX}{name}": kernel_spec(f"{PREFIX}{name}", given) for name, given in offers.items()}
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{PREFIX}*/kernel.json"):
        if old.parent.name not in specs:
            old.unlink()
            old.parent.rmdir()
    for name, spec in specs.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder
