"""Environments for container jobs: the job's image plus its requirements, as an image built
once by the engine and tagged by their hash (`jupyter-jobs-env:<key>`). The build copies a uv
binary, the requirements and the admin's wheel folders into the build context, so the base
image needs no pip and the build needs no network when the wheels are local. The build's
output streams into the job's log; a failed install is the job's failure, with its message."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
import asyncio
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..environments.venvs import EnvironmentFailed, Environments, uv_binary

if TYPE_CHECKING:
    from .base import JobContext

LABEL = "jupyter-jobs.environment"
STAGE = "/tmp/jupyter-jobs-env"


def _context(base: str, requirements: str, envs: Environments) -> tuple[io.BytesIO, list[str]]:
    """The build context: Dockerfile, uv, requirements.txt, wheels/<n>/ for each local find-links folder."""
    index = ["--no-index"] if envs.index_url == "none" else ["--index-url", envs.index_url] if envs.index_url else []
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(uv_binary(), arcname="uv")
        for n, link in enumerate(envs.find_links):
            if Path(link).is_dir():
                tar.add(link, arcname=f"wheels/{n}")
                index += ["--find-links", f"{STAGE}/wheels/{n}"]
            else:
                index += ["--find-links", link]
        for name, text in (("requirements.txt", requirements.strip() + "\n"), ("Dockerfile", (
                f"FROM {base}\nCOPY . {STAGE}/\n"
                f"RUN {STAGE}/uv pip install --system --break-system-packages --python python3 "
                f"{' '.join(index)} -r {STAGE}/requirements.txt && rm -rf {STAGE}\n"))):
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    data.seek(0)
    return data, index


def derived_image(client: Any, base: str, requirements: str, envs: Environments,
                  log: Callable[[bytes], None]) -> str:
    """The tag of `base` + `requirements`, built now if the engine does not have it (blocking)."""
    tag = f"jupyter-jobs-env:{envs.key('docker:' + base, requirements)}"
    envs.used(tag)
    try:
        client.images.get(tag)
        return tag
    except Exception:
        pass
    log(b"[jupyter_jobs] environment: building an image (once for this image and these requirements)\n")
    context, _ = _context(base, requirements, envs)
    labels = {LABEL: "1", f"{LABEL}.base": base, f"{LABEL}.requirements": requirements.strip()[:4000]}
    last = ""
    for chunk in client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                  pull=False, decode=True, labels=labels):
        if "stream" in chunk and chunk["stream"].strip():
            last = chunk["stream"].strip()
            log(b"[jupyter_jobs] environment: " + chunk["stream"].encode())
        if "error" in chunk:
            raise EnvironmentFailed(chunk["error"].strip() or last)
    return tag


def image_environments(client: Any, envs: Environments) -> list[dict[str, Any]]:
    """The environment images on the engine, as GET /environments lists them."""
    out = []
    for image in client.images.list(filters={"label": LABEL}):
        labels, tag = image.labels or {}, (image.tags or [image.id])[0]
        out.append({"id": tag, "kind": "image", "base": labels.get(f"{LABEL}.base"),
                    "requirements": labels.get(f"{LABEL}.requirements", ""), "size": image.attrs.get("Size", 0),
                    "built_at": None, "last_used_at": envs.last_used(tag)})
    return out


def collect_images(client: Any, envs: Environments, max_age: Optional[float], max_size: Optional[int],
                   keep_recent: float = 3600) -> dict[str, int]:
    """Environment images unused past `max_age`, then the least recently used beyond `max_size`."""
    removed = freed = 0
    for env in Environments.doomed(image_environments(client, envs), max_age, max_size, keep_recent):
        try:
            client.images.remove(env["id"], force=False)
        except Exception:  # a container still uses it: next time
            continue
        removed, freed = removed + 1, freed + env["size"]
    return {"images_removed": removed, "image_bytes_freed": freed}


class ImageEnvironments:
    """A container backend's environments: images built from the job's image and its
    requirements, listed and collected (mixed into the docker and podman backends)."""

    default_image: str

    def client(self) -> Any: ...

    def _image(self, image: str) -> None: ...

    async def environment(self, ctx: JobContext, requirements: str, envs: Environments,
                          log: Callable[[bytes], None]) -> None:
        """The job's image plus its requirements, as an image built once (`derived_image`)."""
        base = ctx.job.spec.image or self.default_image
        await asyncio.to_thread(self._image, base)
        try:
            ctx.image = await asyncio.to_thread(derived_image, self.client(), base, requirements, envs, log)
        except docker_errors().APIError as exc:
            raise EnvironmentFailed(str(exc)) from None

    def environment_list(self, envs: Environments) -> list[dict[str, Any]]:
        try:
            return image_environments(self.client(), envs)
        except Exception:  # no engine now: nothing to list
            return []

    def collect_environments(self, envs: Environments, max_age: Optional[float],
                             max_size: Optional[int]) -> dict[str, int]:
        try:
            return collect_images(self.client(), envs, max_age, max_size)
        except Exception:  # no engine now: next time
            return {}


def docker_errors() -> Any:
    """The Docker SDK's errors, imported when first needed (as the backend imports the SDK)."""
    import docker.errors

    return docker.errors
