"""The `docker` backend: each job is a container on a Docker engine, through the Docker SDK.

Output is read by attaching to the container *before* it starts (complete and fast; `logs
--follow` is slower and lost lines in measurements). Containers carry labels, so after a
server restart they are found again and their output resumes at the byte where the job's
log stopped. Every SDK call blocks, so each runs in a worker thread; the output and the
ends of all containers are followed by two threads in all (docker_watch.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import threading
import time
from typing import Any, ClassVar, Optional

from traitlets import Bool, Dict, Enum, Float, Int, Unicode

from ..domain.status import FailureReason
from ..domain.spec import JobSpec
from ..domain.errors import SpecError
from ..domain.replies import Capabilities
from .notebooks import runner_source
from .base import Availability, Backend, BackendError, EndedExecution, Execution, JobContext, Outcome, Usage
from .container import container_settings, workspace_tar
from .docker_env import ImageEnvironments
from .docker_stream import Demux
from .docker_watch import DockerWatch
from .tail import FollowedExecution

LABEL_JOB = "jupyter_jobs.job"
LABEL_INSTANCE = "jupyter_jobs.instance"
NO_GPU_DRIVER = 'could not select device driver ""'


def _docker() -> Any:
    import docker  # imported on first use: the service starts without it being reachable

    return docker


def _container_usage(stats: dict[str, Any]) -> Usage:
    """CPU seconds and resident memory from the engine's stats (cgroup v1 or v2 figures)."""
    cpu = (stats.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage")
    memory = (stats.get("memory_stats") or {}).get("stats") or {}
    rss = memory.get("anon", memory.get("total_rss", memory.get("rss")))
    return Usage(cpu / 1e9 if cpu is not None else None, rss)


class DockerExecution(FollowedExecution):
    """A container being followed (docker_watch.py reads its output and learns of its end);
    once over, its exit status, artifacts and removal are concluded in a worker thread."""

    def __init__(self, backend: DockerBackend, ctx: JobContext, container_id: str, stream: Any, held: bool):
        super().__init__(ctx, {"container": container_id})
        self.backend = backend
        self.container_id = container_id
        self.engine_gone = False  # the engine stopped or restarted while it ran
        self._stream = stream  # an attached response, or None when the container had ended
        self._held = held
        self._published: dict[int, int] = {}  # container port -> host port
        self._demux = Demux(ctx.log.append, self.unseen())
        self._lock = threading.Lock()
        self._stream_over = stream is None
        self._dead = stream is None  # no stream: it ended while no server watched
        self._concluding = False
        backend.watch().watch(self)
        if not held:
            self._follow()

    def _follow(self) -> None:
        if self._stream is not None:
            self.backend.watch().read(self, self._stream)
        else:
            self._maybe_conclude()

    async def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            await asyncio.to_thread(self.backend._start_container, self.container_id)
        except BackendError as exc:
            self.backend.watch().forget(self, self._stream)
            self._finish(Outcome(None, FailureReason.BACKEND_ERROR, str(exc)))
            return
        self.engine_gone = False  # an engine restart before it started is none of its business
        self._follow()

    # -- called by the watch's threads ------------------------------------------------------
    def _output(self, data: bytes | memoryview) -> None:
        self._demux.feed(data)

    def _stream_ended(self) -> None:
        with self._lock:
            self._stream_over = True
        self._maybe_conclude()

    def _died(self, give_up: bool = False) -> None:
        with self._lock:
            self._dead = True
            if give_up and not self._stream_over:  # the engine is gone for good: stop reading
                self._stream_over = True
                self.backend.watch().forget(self, self._stream)
        self._maybe_conclude()

    def _maybe_conclude(self) -> None:
        with self._lock:
            if not (self._dead and self._stream_over) or self._concluding or self._detached.is_set():
                return
            self._concluding = True
        self.backend.watch().forget(self)
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._loop.run_in_executor(None, self._conclude))

    def _conclude(self) -> None:
        """Its exit status, what the engine logged while no server watched, its artifacts."""
        try:
            outcome = self.backend._wait_exit(self.container_id, self.engine_gone)
            if outcome.exit_code is not None:  # the container is there, and over
                if self._stream is None:
                    self.backend._replay_logs(self.container_id, self._demux)
                self.backend._collect(self.ctx, self.container_id)
                self.backend._remove(self.container_id)
        except Exception as exc:  # never leave a job running forever in the service's eyes
            outcome = Outcome(None, FailureReason.BACKEND_ERROR, f"following the job failed: {exc}")
        self._finish(outcome)

    async def process(self) -> Optional[int]:
        """The container's init as this host sees it (an engine on this host; once started)."""
        if self._held or self.done():
            return None
        try:
            pid = await asyncio.to_thread(
                lambda: self.backend.client().api.inspect_container(self.container_id)["State"]["Pid"])
        except Exception:
            return None
        return int(pid) or None

    async def address(self, port: int) -> Optional[tuple[str, int]]:
        """The port the engine published for it on 127.0.0.1 (asked once, while it runs)."""
        if self._held or self.done():
            return None
        if port not in self._published:
            def ask() -> Optional[int]:
                ports = self.backend.client().api.inspect_container(self.container_id)["NetworkSettings"]["Ports"]
                bound = [b for b in (ports or {}).get(f"{port}/tcp") or [] if b.get("HostIp") == "127.0.0.1"]
                return int(bound[0]["HostPort"]) if bound else None

            try:
                found = await asyncio.to_thread(ask)
            except Exception:  # the engine is away or the container just went
                return None
            if found is None:
                return None
            self._published[port] = found
        return "127.0.0.1", self._published[port]

    def terminate(self) -> None:
        if self._held:  # never started: it never will
            self._held = False
            self.backend.watch().forget(self, self._stream)
            self.backend._remove(self.container_id, force=True)
            self._end_unstarted()
            return
        self.backend._signal(self.container_id, "SIGTERM")  # init=True: tini passes it on

    def usage(self) -> Usage:
        if self._held:
            return Usage()
        try:  # one sample, at once (one_shot), rather than the engine's two-second average
            stats = self.backend.client().api.stats(self.container_id, stream=False, one_shot=True)
        except Exception as exc:  # the engine is away or the container just went: no sample
            return Usage(note=f"the Docker engine gave no stats: {exc}")
        return _container_usage(stats)

    def _end_unstarted(self) -> None:
        self._finish(Outcome(None, not_started=True))

    def kill(self) -> None:
        self.backend._signal(self.container_id, "SIGKILL")

    def detach(self) -> None:
        super().detach()
        self.backend.watch().forget(self, self._stream)
        with self._lock:
            concluding = self._concluding
        if not concluding:  # a conclusion under way finishes on its own
            self._finish(None)


class DockerBackend(ImageEnvironments, Backend):
    """Containers on a Docker engine (this host's, or the one DOCKER_HOST points at)."""

    name = "docker"
    description = "a container on a Docker engine"
    #: how messages name the engine and its command line (the podman backend says its own)
    engine: ClassVar[str] = "Docker engine"
    engine_cli: ClassVar[str] = "docker"
    #: whether the engine's event stream filters by event name (docker_watch.py)
    die_filter: ClassVar[bool] = True

    base_url = Unicode("", help="Docker engine URL; empty: DOCKER_HOST or the local socket.").tag(config=True)
    workspace_mode = Enum(
        ["auto", "bind", "copy"], "auto",
        help="How the workspace gets into the container: bind-mounted (an engine on this host) or "
        "copied in as a tar stream and artifacts copied out at the end (a remote engine). auto: bind "
        "for a local socket.",
    ).tag(config=True)
    storage_volume = Unicode(
        "", help="Named volume for /storage; empty: the service's storage folder, bind-mounted."
    ).tag(config=True)
    datasets = Dict(
        key_trait=Unicode(), value_trait=Unicode(),
        help="Read-only mounts for every job: {host path or volume name: container path}.",
    ).tag(config=True)
    user = Unicode("", help="User (uid[:gid]) jobs run as; empty: the image's.").tag(config=True)
    network_mode = Unicode("bridge", help="Container network; 'none' isolates jobs. Never 'host' by default.").tag(
        config=True
    )
    pids_limit = Int(4096, help="Most processes a job may have.").tag(config=True)
    shm_size = Unicode("", help="Size of /dev/shm, e.g. '2g' for data loaders; empty: the engine's default.").tag(
        config=True
    )
    runtime = Unicode("", help="Container runtime, e.g. 'nvidia' on engines that need it for GPUs.").tag(config=True)
    gpu_request = Enum(
        ["device_requests", "cdi", "env"], "device_requests",
        help="How a job's GPUs are given to its container: Docker device requests (the NVIDIA Container "
        "Toolkit), CDI devices named `<cdi_kind>=<index>` (Podman; Docker 25+ with CDI enabled), or only "
        "NVIDIA_VISIBLE_DEVICES for a runtime that reads it (runtime='nvidia').",
    ).tag(config=True)
    cdi_kind = Unicode(
        "nvidia.com/gpu", help="The CDI device kind of the host's GPUs (gpu_request='cdi'): device i is "
        "'<cdi_kind>=i', as `nvidia-ctk cdi generate` names them.",
    ).tag(config=True)
    default_image = Unicode("", help="Image for jobs whose spec names none.").tag(config=True)
    pull = Bool(True, help="Pull images the engine does not have.").tag(config=True)
    remove_finished = Bool(True, help="Remove containers once their output and artifacts are collected.").tag(
        config=True
    )
    engine_wait = Float(60.0, help="Seconds to wait for an unreachable engine before failing a job.").tag(config=True)
    instance = Unicode(help="Label value marking this service's containers.").tag(config=True)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._client: Any = None
        self._facts: Optional[tuple[float, dict[str, Any]]] = None  # (when, the engine's facts from `info`)
        self._watch: Optional[DockerWatch] = None
        self._lock = threading.Lock()
        if not self.instance:
            data_dir = getattr(self.parent, "data_dir", "") or ""
            self.instance = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]

    # -- engine -----------------------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                docker = _docker()
                if self.base_url:
                    self._client = docker.DockerClient(base_url=self.base_url, timeout=30)
                else:
                    self._client = docker.from_env(timeout=30)
            return self._client

    def watch(self) -> DockerWatch:
        """The reader and event stream that follow all of this service's containers."""
        with self._lock:
            if self._watch is None:
                self._watch = DockerWatch(self.client, f"{LABEL_INSTANCE}={self.instance}", lambda: self.engine_wait,
                                          self.die_filter)
            return self._watch

    async def close(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _local(self) -> bool:
        if self.workspace_mode != "auto":
            return self.workspace_mode == "bind"
        return self.client().api.base_url == "http+docker://localhost"

    async def availability(self) -> Availability:
        """Asked at every submit: a ping says the engine answers now (~1 ms); its facts (`info`,
        ~10 ms: the engine gathers them anew each time) are asked again after a minute."""
        def ping() -> Availability:
            try:
                client = self.client()
                client.ping()
                facts = self._facts
                if facts is None or time.monotonic() - facts[0] > 60:
                    info = client.info()
                    runtimes = sorted(info.get("Runtimes", {}))
                    facts = self._facts = (time.monotonic(), {"engine": info.get("ServerVersion"),
                                                              "runtimes": runtimes, "nvidia": "nvidia" in runtimes})
            except Exception as exc:
                with self._lock:
                    self._client, self._facts = None, None
                where = self.base_url or "DOCKER_HOST or unix:///var/run/docker.sock"
                return Availability(False, f"cannot reach the Docker engine at {where}: {exc}")
            return Availability(True, details=dict(facts[1]))

        return await asyncio.to_thread(ping)

    def capabilities(self) -> Capabilities:
        return Capabilities(containers=True, gpus=True, cpus=True, memory=True, environments=True)

    async def validate(self, spec: JobSpec) -> None:
        if not spec.image and not self.default_image:
            raise SpecError.one("image", f"the {self.name} backend needs an image, e.g. 'python:3.11' "
                                f"(or an admin-set c.{type(self).__name__}.default_image)")
        if spec.expose and self.network_mode in ("none", "host"):
            raise SpecError.one("expose", f"this server's containers run with network mode {self.network_mode!r}, "
                                "so their ports cannot be published (c.DockerBackend.network_mode)")
        if (spec.expose or spec.datasets) and not await asyncio.to_thread(self._local):
            field = "expose" if spec.expose else "datasets"
            raise SpecError.one(field, f"{'endpoints' if spec.expose else 'datasets'} need a {self.engine} on the "
                                "Jupyter host (ports published on 127.0.0.1, datasets bound read-only)")

    # -- starting ---------------------------------------------------------------------------
    def _image(self, image: str) -> None:
        docker = _docker()
        client = self.client()
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        cli = self.engine_cli
        hint = (f"Build or load it on the engine first (`{cli} build -t {image} .` or "
                f"`{cli} load -i image.tar`), or name an image it has.")
        if not self.pull:
            raise BackendError(f"image {image!r} is not on the {self.engine}. {hint}")
        try:
            client.images.pull(image)
        except Exception as exc:
            raise BackendError(f"image {image!r} is not on the {self.engine} and could not be pulled "
                               f"({exc}). {hint}") from None

    def _create(self, ctx: JobContext) -> Any:
        docker = _docker()
        client = self.client()
        local = self._local()
        host, env = container_settings(self, ctx, local)
        name = f"jupyter-job-{ctx.job.id}"
        try:  # left over from a start that a server restart interrupted
            client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        cid = self._create_container(
            image=ctx.image or ctx.job.spec.image or self.default_image,
            command=ctx.job.spec.argv(notebook_runner=runner_source()),
            environment=env, labels={LABEL_JOB: ctx.job.id, LABEL_INSTANCE: self.instance}, name=name,
            ports=list(ctx.ports.values()), host=host,
        )
        if not local:
            client.api.put_archive(cid, "/", workspace_tar(ctx.workspace))
        return cid

    def _create_container(self, *, image: str, command: list[str], environment: dict[str, str],
                          labels: dict[str, str], name: str, ports: list[int], host: dict[str, Any]) -> str:
        """Create the (unstarted) container; its id."""
        api = self.client().api
        return api.create_container(
            image, command=command, working_dir="/workspace", environment=environment, labels=labels, name=name,
            ports=ports or None, user=self.user or None, stdin_open=False, tty=False,
            host_config=api.create_host_config(**host),
        )["Id"]

    def _engine_url(self, path: str) -> str:
        api = self.client().api
        return f"{api.base_url}/v{api.api_version}{path}"

    def _attach(self, cid: str, logs: bool) -> Any:
        """The raw multiplexed stream of a container, as a streamed response (read it with
        `_upgraded`). The SDK's `attach` yields one Python object per frame (~9x slower) and
        its `attach_socket` skips bytes buffered with the headers; the API client is a
        requests.Session, so its public `post` with the engine's URL does the request."""
        return self.client().api.post(
            self._engine_url(f"/containers/{cid}/attach"),
            params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 1 if logs else 0},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"}, stream=True,
        )

    def _create_held(self, ctx: JobContext) -> tuple[str, Any]:
        """Create the container and attach to it; it is started by `DockerExecution.release`."""
        docker = _docker()
        try:
            self._image(ctx.image or ctx.job.spec.image or self.default_image)
            cid = self._create(ctx)
            return cid, self._attach(cid, logs=False)
        except BackendError:
            raise
        except docker.errors.DockerException as exc:
            raise BackendError(f"the {self.engine} refused the job: {_explain(exc)}") from None

    def _start_container(self, cid: str) -> None:
        docker = _docker()
        try:
            self.client().api.start(cid)
        except docker.errors.DockerException as exc:
            self._remove(cid)
            if NO_GPU_DRIVER in str(exc):
                raise BackendError(
                    "GPUs were requested but the Docker engine has no NVIDIA runtime: install the NVIDIA "
                    f"Container Toolkit on the engine's host, or run without GPUs ({_explain(exc)})"
                ) from None
            raise BackendError(f"the container did not start: {_explain(exc)}") from None

    async def start(self, ctx: JobContext) -> Execution:
        cid, stream = await asyncio.to_thread(self._create_held, ctx)
        return DockerExecution(self, ctx, cid, stream, held=True)

    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        def find() -> tuple[str, Any, bool]:
            cid = state.get("container") or ""
            status = self.client().api.inspect_container(cid)["State"]["Status"]
            if status == "created":  # recorded, never started: the service releases it
                return cid, self._attach(cid, logs=False), True
            # running: attach replays what the engine logged and goes on streaming
            return cid, (self._attach(cid, logs=True) if status == "running" else None), False

        docker = _docker()
        try:
            cid, stream, held = await asyncio.to_thread(find)
        except docker.errors.NotFound:
            return EndedExecution(Outcome(None, FailureReason.LOST, "its container no longer exists"))
        return DockerExecution(self, ctx, cid, stream, held=held)

    # -- concluding (a worker thread) ------------------------------------------------------------
    def _wait_exit(self, cid: str, engine_gone: bool) -> Outcome:
        """How the (ended) container ended, waiting up to `engine_wait` for an engine that is away."""
        docker = _docker()
        deadline = time.monotonic() + self.engine_wait
        while True:
            try:
                code = self.client().api.wait(cid)["StatusCode"]
                state = self.client().api.inspect_container(cid)["State"]
                break
            except docker.errors.NotFound:
                return Outcome(None, FailureReason.LOST, "its container was removed before it finished")
            except Exception as exc:
                if time.monotonic() > deadline:
                    return Outcome(None, FailureReason.BACKEND_ERROR,
                                   f"lost contact with the {self.engine} for {self.engine_wait:g} s: {exc}")
                engine_gone = True
                with self._lock:
                    self._client = None
                time.sleep(1)
        return _exit_outcome(code, state, engine_gone, self.engine)

    def _replay_logs(self, cid: str, demux: Demux) -> None:
        """Feed what the engine logged for a finished container (the demux skips what the job's
        log holds already)."""
        try:  # the SDK's `logs` merges stdout and stderr: read the multiplexed frames instead
            resp = self.client().api.get(self._engine_url(f"/containers/{cid}/logs"),
                                         params={"stdout": 1, "stderr": 1}, stream=True)
            resp.raise_for_status()
            for data in resp.iter_content(1 << 18):
                demux.feed(data)
        except Exception as exc:
            self.log.warning("could not read the logs of container %s: %s", cid, exc)

    def _collect(self, ctx: JobContext, cid: str) -> None:
        if self._local():
            return  # bind-mounted: the artifacts are already on this host
        for folder, dest in (("artifacts", ctx.artifacts), ("metrics", ctx.metrics)):  # metrics: at the end
            try:
                chunks, _ = self.client().api.get_archive(cid, f"/{folder}")
                with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                    members = [m for m in tar.getmembers() if m.name.startswith(f"{folder}/")]
                    for m in members:
                        m.name = m.name[len(folder) + 1:]
                    tar.extractall(dest, members=[m for m in members if m.name], filter="data")
            except Exception as exc:
                self.log.warning("could not copy the %s of %s: %s", folder, ctx.job.id, exc)

    def _signal(self, cid: str, signal: str) -> None:
        try:
            self.client().api.kill(cid, signal=signal)
        except Exception as exc:  # it ended meanwhile, or the engine is away (the pump notices)
            self.log.debug("signalling %s: %s", cid, exc)

    def _remove(self, cid: str, force: bool = False) -> None:
        if not (self.remove_finished or force):
            return
        try:
            self.client().api.remove_container(cid, force=True)
        except Exception as exc:
            self.log.debug("removing %s: %s", cid, exc)


def _exit_outcome(code: int, state: dict[str, Any], engine_gone: bool, engine: str = "Docker engine") -> Outcome:
    """How a container ended, from its exit code and the engine's record of its state."""
    if engine_gone:
        return Outcome(code, FailureReason.BACKEND_ERROR, f"the {engine} stopped or restarted while the job "
                       f"ran; its container exited with code {code}")
    if state.get("OOMKilled"):
        return Outcome(code, FailureReason.OOM, "the container ran out of memory and was killed "
                       "(raise resources.memory)")
    if state.get("Error"):
        return Outcome(code, FailureReason.BACKEND_ERROR, state["Error"])
    return Outcome(code)


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
