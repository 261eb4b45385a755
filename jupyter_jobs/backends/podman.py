"""The `podman` backend: the docker backend's containers on the server user's own rootless
Podman engine, through Podman's Docker-compatible API (no root, no Docker socket).

The engine is the one at `$XDG_RUNTIME_DIR/podman/podman.sock` of the user the Jupyter server
runs as (where `systemctl --user enable --now podman.socket` puts it). Where nothing answers
there, the backend starts `podman system service --time=0` for that user with the first job
(`start_service`), a child of the server that the server stops when it stops; its containers
run on without it (Podman's conmon keeps them) and the next server finds them again. It never
talks to an engine run by root or by another user: the socket and the folders above it must be
this user's own, private, and not links (engine_socket.py).

Rootless limits: memory, CPU and process limits need cgroup v2 with those controllers delegated
to the user; on cgroup v1 rootless Podman ignores them (its log says "Resource limits are not
supported and ignored on cgroups V1 rootless systems"). `capabilities` says which are applied,
from the engine's own report, so a spec asking for one gets a note (or a 400 under
`strict_specs`) rather than a limit silently dropped.

GPUs are CDI devices (`nvidia.com/gpu=<index>`). Podman 4.3's Docker-compatible API cannot ask
for those (it looks a device name up as a file, and drops device requests), so a job with GPUs
is created through Podman's own API from the same settings (`libpod_spec`); the rest of its
life goes through the compatible API like any job's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Optional

from traitlets import Bool, Float, List, Unicode, default

from ..domain.replies import Capabilities
from .base import Availability, BackendError
from .docker import DockerBackend, _docker
from .engine_socket import UnsafeSocket, answers, checked_socket, default_runtime_dir, rootless_limits


class PodmanBackend(DockerBackend):
    """Containers on the rootless Podman engine of the user the server runs as."""

    name = "podman"
    description = "a rootless container on the server user's own Podman engine"
    engine: ClassVar[str] = "Podman engine"
    engine_cli: ClassVar[str] = "podman"
    die_filter: ClassVar[bool] = False  # Podman 4.3 sends nothing for the `event=die` filter

    socket = Unicode(
        "", help="The Podman API socket (a path). Empty: podman/podman.sock in the user's runtime folder "
        "(runtime_dir). It must be the server user's own, in a folder only that user can write.",
    ).tag(config=True)
    runtime_dir = Unicode(
        "", help="The user's private runtime folder (Podman's XDG_RUNTIME_DIR). Empty: $XDG_RUNTIME_DIR, else "
        "/run/user/<uid> where it is the user's, else <tmp>/jupyter-jobs-podman-<uid> (made 0700).",
    ).tag(config=True)
    start_service = Bool(
        True, help="Start `podman system service` as the server's user when no engine answers at the "
        "socket (with the first job); it is stopped with the server. False: use a running one only.",
    ).tag(config=True)
    podman = Unicode("podman", help="The podman command.").tag(config=True)
    service_args = List(
        Unicode(), None, allow_none=True,
        help="podman's global options for the service it starts. None: '--cgroup-manager=cgroupfs "
        "--events-backend=file' where the user has no systemd session (a server started without a login), "
        "else none.",
    ).tag(config=True)
    service_wait = Float(30.0, help="Seconds to wait for a started service to answer.").tag(config=True)

    @default("gpu_request")
    def _cdi(self) -> str:
        """GPUs as CDI devices '<cdi_kind>=<index>': Podman's device support (`nvidia-ctk cdi
        generate` writes the host's spec)."""
        return "cdi"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._service: Optional[subprocess.Popen] = None
        self._service_lock = threading.Lock()
        self._engine_limits: Optional[dict[str, bool]] = None  # from the engine's own report

    # -- where the engine is ----------------------------------------------------------------
    def socket_path(self) -> Path:
        """The checked socket path (raises UnsafeSocket naming what is wrong)."""
        if self.socket:
            return checked_socket(Path(self.socket))
        return checked_socket(default_runtime_dir(self.runtime_dir) / "podman" / "podman.sock", make_parent=True)

    def client(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
        path = self._engine()
        with self._lock:
            if self._client is None:
                self._client = _docker().DockerClient(base_url=f"unix://{path}", timeout=30)
            return self._client

    def _engine(self) -> Path:
        """The socket of an engine that answers, started if need be (blocking)."""
        if os.geteuid() == 0:
            raise BackendError("the podman backend runs rootless Podman as the server's own user, and this "
                               "server runs as root: use the docker backend, or run the server as a user")
        try:
            path = self.socket_path()
        except UnsafeSocket as exc:
            raise BackendError(str(exc)) from None
        if answers(path):
            return path
        if not self.start_service:
            raise BackendError(f"no Podman engine answers at {path}; start the user's own (`systemctl --user "
                               "enable --now podman.socket`) or set c.PodmanBackend.start_service = True")
        with self._service_lock:
            if not answers(path):
                self._start_service(path)
        return path

    def _start_service(self, path: Path) -> None:
        command = shutil.which(self.podman)
        if command is None:
            raise BackendError(f"{self.podman!r} is not installed; on Debian: apt-get install podman uidmap "
                               "slirp4netns fuse-overlayfs catatonit")
        if path.exists():  # a socket of ours (checked) that no engine answers any more
            path.unlink()
        try:  # Podman's own runtime state (its locks, its containers' run folders) goes there
            runtime = default_runtime_dir(self.runtime_dir)
        except UnsafeSocket as exc:
            raise BackendError(str(exc)) from None
        env = {**self.host_environment(), "XDG_RUNTIME_DIR": str(runtime)}
        args = self.service_args if self.service_args is not None else _session_args(runtime)
        log_path = path.parent / "jupyter-jobs-service.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen([command, *args, "system", "service", "--time=0", f"unix://{path}"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # a terminal's Ctrl-C is not for it
        self._service = proc
        deadline = time.monotonic() + self.service_wait
        while not answers(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._stop_service()
                tail = log_path.read_bytes()[-1500:].decode(errors="replace").strip()
                raise BackendError(f"`podman system service` did not answer at {path}: {tail or 'no output'}")
            time.sleep(0.05)
        self.log.info("started the Podman engine at %s (pid %s)", path, proc.pid)

    def _stop_service(self) -> None:
        proc, self._service = self._service, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # its containers run on (conmon); a later server starts it again
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def close(self) -> None:
        await super().close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        await asyncio.to_thread(self._stop_service)

    def _create_container(self, *, image: str, command: list[str], environment: dict[str, str],
                          labels: dict[str, str], name: str, ports: list[int], host: dict[str, Any]) -> str:
        """A job with CDI devices is created through Podman's own API: its Docker-compatible one
        (Podman 4.3) stats a device name as a path and drops device requests without a word."""
        if not host.get("devices"):
            return super()._create_container(image=image, command=command, environment=environment,
                                             labels=labels, name=name, ports=ports, host=host)
        api = self.client().api
        spec = libpod_spec(image=image, command=command, environment=environment, labels=labels, name=name,
                           user=self.user, host=host)
        reply = api.post(f"{api.base_url}/v4.0.0/libpod/containers/create", json=spec, timeout=60)
        if reply.status_code != 201:
            try:
                why = reply.json().get("message") or reply.text
            except ValueError:
                why = reply.text
            raise BackendError(f"the Podman engine refused the job: {why.strip()}")
        return reply.json()["Id"]

    # -- what it is and does ------------------------------------------------------------------
    async def availability(self) -> Availability:
        def check() -> Availability:
            if os.geteuid() == 0:
                return Availability(False, "the podman backend runs rootless Podman as the server's own user, and "
                                    "this server runs as root (use the docker backend)")
            try:
                path = self.socket_path()
            except UnsafeSocket as exc:
                return Availability(False, str(exc))
            details: dict[str, Any] = {"socket": str(path), "rootless": True}
            if not answers(path):
                if not self.start_service:
                    return Availability(False, f"no Podman engine answers at {path} (c.PodmanBackend.start_service "
                                        "is off)")
                if shutil.which(self.podman) is None:
                    return Availability(False, f"{self.podman!r} is not installed (Debian: apt-get install podman "
                                        "uidmap slirp4netns fuse-overlayfs catatonit)")
                # started with the first job, not for a look at the list of backends
                return Availability(True, details={**details, "engine": None, "service": "starts with the first job",
                                                   **self._limit_details()})
            try:
                info = self._engine_info()
            except Exception as exc:
                with self._lock:
                    self._client = None
                return Availability(False, f"cannot reach the Podman engine at {path}: {exc}")
            return Availability(True, details={**details, **info, **self._limit_details()})

        return await asyncio.to_thread(check)

    def _engine_info(self) -> dict[str, Any]:
        """The engine's version, and which limits it applies (its libpod report)."""
        api = self.client().api
        host = api.get(f"{api.base_url}/v4.0.0/libpod/info", timeout=10).json()["host"]
        rootless = bool((host.get("security") or {}).get("rootless"))
        controllers = host.get("cgroupControllers") or []
        self._engine_limits = rootless_limits(rootless, host.get("cgroupVersion", ""), controllers)
        version = api.get(f"{api.base_url}/version", timeout=10).json().get("Version")
        return {"engine": version, "rootless": rootless, "cgroup": host.get("cgroupVersion"),
                "cgroup_manager": host.get("cgroupManager"), "service": "running"}

    def _limits(self) -> dict[str, bool]:
        if self._engine_limits is not None:
            return self._engine_limits
        return rootless_limits(True, None, None)  # not asked yet: what this host's cgroups allow

    def _limit_details(self) -> dict[str, Any]:
        limits = self._limits()
        left = [what for what in ("memory", "cpus", "pids") if not limits[what]]
        if not left:
            return {"limits": "applied"}
        return {"limits": f"{', '.join(left)} not applied: rootless Podman needs cgroup v2 with those controllers "
                "delegated to the user (systemd's user@.service); on cgroup v1 it ignores them"}

    def capabilities(self) -> Capabilities:
        limits = self._limits()
        return Capabilities(containers=True, gpus=True, cpus=limits["cpus"], memory=limits["memory"],
                            environments=True)

    def environment_list(self, envs: Any) -> list[dict[str, Any]]:
        return super().environment_list(envs) if self._running() else []  # never started for a listing

    def collect_environments(self, envs: Any, max_age: Optional[float], max_size: Optional[int]) -> dict[str, int]:
        return super().collect_environments(envs, max_age, max_size) if self._running() else {}

    def _running(self) -> bool:
        try:
            return os.geteuid() != 0 and answers(self.socket_path())
        except UnsafeSocket:
            return False


def libpod_spec(*, image: str, command: list[str], environment: dict[str, str], labels: dict[str, str], name: str,
                user: str, host: dict[str, Any]) -> dict[str, Any]:
    """The same container in Podman's own create format (its SpecGenerator) from the Docker host
    settings container.py makes: mounts, init, no privileges, limits, network, ports, devices."""
    from docker.utils import parse_bytes

    mounts, volumes = [], []
    for m in host.get("mounts", []):
        options = ["ro"] if m.get("ReadOnly") else []
        if m["Type"] == "volume":
            volumes.append({"Name": m["Source"], "Dest": m["Target"], "Options": options})
        else:
            mounts.append({"destination": m["Target"], "source": m["Source"], "type": "bind",
                           "options": ["rbind", *options]})
    limits: dict[str, Any] = {"pids": {"limit": host["pids_limit"]}}
    if host.get("mem_limit"):
        limits["memory"] = {"limit": host["mem_limit"], "swap": host.get("memswap_limit", host["mem_limit"])}
    if host.get("nano_cpus"):
        limits["cpu"] = {"quota": host["nano_cpus"] // 10_000, "period": 100_000}
    spec: dict[str, Any] = {
        "name": name, "image": image, "command": command, "work_dir": "/workspace", "env": environment,
        "labels": labels, "mounts": mounts, "volumes": volumes, "init": bool(host.get("init")),
        "privileged": False, "no_new_privileges": "no-new-privileges" in host.get("security_opt", []),
        "resource_limits": limits, "netns": {"nsmode": host.get("network_mode") or "bridge"},
        "portmappings": [{"host_ip": ip, "container_port": port, "host_port": 0, "protocol": "tcp"}
                         for port, (ip, _) in (host.get("port_bindings") or {}).items()],
        "devices": [{"path": d["PathOnHost"]} for d in host.get("devices", [])],
        "terminal": False, "stdin": False,
    }
    if user:
        spec["user"] = user
    if host.get("shm_size"):
        spec["shm_size"] = parse_bytes(host["shm_size"])
    if host.get("runtime"):
        spec["oci_runtime"] = host["runtime"]
    return spec


def _session_args(runtime: Path) -> list[str]:
    """Without a systemd user session (its bus in the runtime folder), Podman can neither make
    systemd cgroups nor write to the journal: use cgroupfs and an events file."""
    if (runtime / "bus").exists():
        return []
    return ["--cgroup-manager=cgroupfs", "--events-backend=file"]
