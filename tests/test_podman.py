"""The podman backend: each user's jobs on that user's own rootless Podman, started for the
user's Jupyter server, with real non-root users (tests/rootless.py). The tests it shares with
the docker backend (output, exit codes, cancel, timeout, artifacts, storage, missing images,
planted symlinks) run in test_docker.py, marked `both_engines`. No GPU exists here: GPUs are
tested through Podman's CDI support with a CDI spec of fake devices that only set a variable."""

from __future__ import annotations

import os
import socket
import stat
import time
import urllib.error
from pathlib import Path

import docker
import pytest

from jupyter_jobs.backends import cgroups
from jupyter_jobs.backends.engine_socket import UnsafeSocket, checked_socket, default_runtime_dir
from rootless import PodmanUser
from support import ServerProcess, log_text

BUSYBOX = "jupyter-jobs/busybox:test"
CGROUP_V1 = cgroups.version() == 1
NOBODY = 65534  # another user


def backend(server: ServerProcess) -> dict:
    return {b["name"]: b for b in server.request("GET", "/jupyter-jobs/backends")["backends"]}["podman"]


def submit(server: ServerProcess, **spec) -> dict:
    return server.request("POST", "/jupyter-jobs/jobs", {"backend": "podman", "image": BUSYBOX, "workspace": "proj",
                                                         **spec})


def run(server: ServerProcess, timeout: float = 60, **spec) -> tuple[dict, str]:
    job = submit(server, **spec)
    return server.wait(job["id"], timeout=timeout), log_text(server.logs(job["id"]))


def start(user_servers, user: PodmanUser, *extra: str) -> ServerProcess:
    server = user_servers(user, *extra)
    user.folder(server.root / "proj")
    return server


def services(user: PodmanUser) -> list[int]:
    """The user's `podman system service` processes serving their socket."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            owner = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if b"service" in argv and f"unix://{user.socket}".encode() in argv:
            assert owner == user.uid, f"the engine at {user.socket} runs as uid {owner}"
            found.append(int(pid))
    return found


def engine(user: PodmanUser) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{user.socket}", timeout=30)


def test_the_users_engine_starts_with_the_first_job_and_stops_with_the_server(alice, user_servers):
    server = start(user_servers, alice)
    listed = backend(server)
    assert listed["available"], listed
    assert listed["details"]["service"] == "starts with the first job" and not services(alice)
    assert listed["details"]["socket"] == str(alice.socket)

    done, out = run(server, command="id -u; echo hi; echo made > /artifacts/a.txt")
    assert done["status"] == "succeeded", done
    assert out == "0\nhi\n"  # root in the user's namespace: the user outside
    assert len(services(alice)) == 1  # one engine, the user's own (asserted in services)
    st = os.lstat(alice.socket)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == alice.uid
    assert stat.S_IMODE(os.stat(alice.socket.parent).st_mode) == 0o700
    artifact = server.data / "jobs" / done["id"] / "artifacts" / "a.txt"
    assert artifact.read_text() == "made\n" and os.stat(artifact).st_uid == alice.uid

    details = backend(server)["details"]
    assert details["rootless"] is True and details["engine"] and details["service"] == "running"

    server.stop()
    deadline = time.monotonic() + 15
    while services(alice) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not services(alice), "the engine the server started outlived it"


def test_a_job_outlives_a_server_restart(alice, user_servers):
    """Stopping the server stops its engine, not its containers: the next server starts the
    engine again and the job's output resumes where the log stopped."""
    server = start(user_servers, alice)
    job = submit(server, command="echo one; while [ ! -e /storage/go ]; do sleep 0.1; done; echo two")
    server.wait(job["id"], {"running"})
    deadline = time.monotonic() + 20
    while "one" not in log_text(server.logs(job["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    server.stop()
    (server.data / "storage" / "go").write_text("")
    server.start()
    done = server.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert log_text(server.logs(job["id"])) == "one\ntwo\n"


def test_two_users_engines_and_jobs_are_apart(alice, bob, user_servers):
    mine = start(user_servers, alice)
    theirs = start(user_servers, bob)
    running = submit(mine, command="echo up; sleep 60")
    mine.wait(running["id"], {"running"})
    # bob's server had no XDG_RUNTIME_DIR: a private folder of his own in /tmp
    assert backend(theirs)["details"]["socket"] == str(bob.socket)
    done, out = run(theirs, command="echo bob")
    assert done["status"] == "succeeded" and out == "bob\n"
    st = os.lstat(bob.runtime)
    assert st.st_uid == bob.uid and stat.S_IMODE(st.st_mode) == 0o700

    def labelled(user: PodmanUser) -> set[str]:
        return {c.labels.get("jupyter_jobs.job") for c in engine(user).containers.list(all=True)}

    assert running["id"] in labelled(alice) and running["id"] not in labelled(bob)
    # bob himself cannot reach alice's engine: her runtime folder is hers alone
    reach = bob.run("/usr/bin/python3", "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                    "s.connect(sys.argv[1])", str(alice.socket), check=False)
    assert reach.returncode != 0 and b"PermissionError" in reach.stderr
    # nor can his server be pointed at it
    pointed = start(user_servers, bob, f"--PodmanBackend.socket={alice.socket}")
    listed = backend(pointed)
    assert listed["available"] is False and "Permission denied" in listed["reason"], listed
    mine.request("POST", f"/jupyter-jobs/jobs/{running['id']}/cancel")
    assert mine.wait(running["id"])["status"] == "cancelled"


@pytest.mark.skipif(not CGROUP_V1, reason="on cgroup v2 rootless Podman applies the limits delegated to the user")
def test_limits_cgroup_v1_cannot_apply_are_said_not_dropped(alice, user_servers):
    """Rootless Podman ignores memory and CPU limits on cgroup v1: the backend says so in its
    capabilities and details, a spec asking for them gets a note, and under strict_specs a 400."""
    server = start(user_servers, alice)
    run(server, command="true")  # the engine's own report, once it runs
    listed = backend(server)
    assert listed["capabilities"]["memory"] is False and listed["capabilities"]["cpus"] is False
    assert listed["details"]["cgroup"] == "v1" and "cgroup v1" in listed["details"]["limits"]
    job = submit(server, command="true", resources={"memory": "64m", "cpus": 0.5})
    notes = " ".join(job["notes"])
    assert "resources.memory" in notes and "resources.cpus" in notes and "podman" in notes

    strict = start(user_servers, alice, "--JobsApp.strict_specs=True")
    with pytest.raises(urllib.error.HTTPError) as refused:
        submit(strict, command="true", resources={"memory": "64m"})
    assert refused.value.code == 400 and b"resources.memory" in refused.value.read()


@pytest.fixture
def cdi_devices():
    """A CDI spec of two fake devices of a test kind (never nvidia.com's: a real GPU host's own
    spec stays alone), each setting a variable in the container, as the host's admin writes it."""
    folder = Path("/etc/cdi")
    folder.mkdir(exist_ok=True)
    spec = folder / "jupyter-jobs-test.yaml"
    devices = "".join(f'  - name: "{i}"\n    containerEdits:\n      env: ["FAKE_GPU={i}"]\n' for i in range(2))
    spec.write_text(f'cdiVersion: "0.5.0"\nkind: "jupyter-jobs.test/gpu"\ndevices:\n{devices}containerEdits: {{}}\n')
    yield "jupyter-jobs.test/gpu"
    spec.unlink()


def test_gpus_reach_the_container_through_cdi(alice, user_servers, cdi_devices):
    """Podman 4.3's Docker-compatible API cannot ask for CDI devices, so a GPU job is created
    through Podman's own API: the same container otherwise (workspace, artifacts, storage, env)."""
    server = start(user_servers, alice, "--JobsApp.gpus=2", f"--PodmanBackend.cdi_kind={cdi_devices}",
                   "--PodmanBackend.remove_finished=False")
    (server.root / "proj" / "in.txt").write_text("workspace\n")
    done, out = run(server, command='cat in.txt; echo "$FAKE_GPU $NVIDIA_VISIBLE_DEVICES $CUDA_VISIBLE_DEVICES" '
                    '| tee /artifacts/gpu.txt > /storage/gpu.txt; id -u', resources={"gpus": 1})
    assert done["status"] == "succeeded", done
    [gpu] = done["gpus"]
    assert out == "workspace\n0\n"
    # the device the service allocated, as CDI injected it
    assert (server.data / "jobs" / done["id"] / "artifacts" / "gpu.txt").read_text() == f"{gpu} {gpu} 0\n"
    assert (server.data / "storage" / "gpu.txt").read_text() == f"{gpu} {gpu} 0\n"
    [container] = engine(alice).containers.list(all=True, filters={"label": f"jupyter_jobs.job={done['id']}"})
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False and host["Init"] is True and "no-new-privileges" in host["SecurityOpt"]
    container.remove(force=True)


def test_gpus_without_the_hosts_cdi_spec_fail_naming_the_device(alice, user_servers):
    """The default kind is nvidia.com/gpu (`nvidia-ctk cdi generate`); this host has no such
    spec, so the engine refuses the device by name: the request went to CDI."""
    server = start(user_servers, alice, "--JobsApp.gpus=1")
    done, _ = run(server, command="true", resources={"gpus": 1})
    assert done["status"] == "failed" and done["reason"] == "backend_error"
    assert "CDI" in done["message"] and "nvidia.com/gpu=0" in done["message"], done
    assert [c for c in engine(alice).containers.list(all=True)] == []  # nothing left behind


def test_a_socket_or_folder_another_user_controls_is_refused(tmp_path, monkeypatch):
    """Checked as the server's user (root here; other users' files are nobody's): never another
    user's folder, a folder others may write, a link, or something that is not a socket."""
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(mine / "podman.sock"))
        assert checked_socket(mine / "podman.sock") == mine / "podman.sock"
    assert checked_socket(mine / "absent.sock") == mine / "absent.sock"

    def refused(path: Path, why: str) -> None:
        with pytest.raises(UnsafeSocket, match=why):
            checked_socket(path)

    others = tmp_path / "others"
    others.mkdir(mode=0o700)
    os.chown(others, NOBODY, NOBODY)
    refused(others / "podman.sock", "belongs to uid")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    refused(shared / "podman.sock", "writable by other users")
    (tmp_path / "link").symlink_to(mine)
    refused(tmp_path / "link" / "podman.sock", "symbolic link")
    (mine / "linked.sock").symlink_to(mine / "podman.sock")
    refused(mine / "linked.sock", "not a socket")
    (mine / "file.sock").write_text("")
    refused(mine / "file.sock", "not a socket")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(mine / "theirs.sock"))
        os.chown(mine / "theirs.sock", NOBODY, NOBODY)
        refused(mine / "theirs.sock", "belongs to uid")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(others))  # e.g. inherited through sudo
    with pytest.raises(UnsafeSocket, match="XDG_RUNTIME_DIR"):
        default_runtime_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a server running as root")
def test_a_root_server_never_runs_a_root_engine(tmp_path):
    """The podman backend is rootless only: a server running as root says so (the docker backend is
    the root engine's)."""
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "data").start()
    try:
        listed = backend(server)
        assert listed["available"] is False and "root" in listed["reason"]
    finally:
        server.stop()
