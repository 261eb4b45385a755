"""Real Unix users with their own rootless Podman and their own Jupyter server, for the podman
backend's tests (as root: `useradd`, then everything as that user through `setpriv`).

Needs `bash scripts/podman` (root): Podman and what rootless needs, and a virtual environment
made from /usr/bin/python3 with a copy of this checkout installed, outside it, which the users
can run (the checkout and the suite's own .venv may lie under /root, where they cannot read).
The test images come from the tars scripts/docker-engine caches (or the Docker engine), loaded
into each user's own image storage with `podman load`: no registry is used.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from support import ServerProcess, require

REPO = Path(__file__).resolve().parent.parent
#: the Python the throwaway users run (scripts/podman makes it, outside the checkout)
PYTHON = Path(os.environ.get("JUPYTER_JOBS_ROOTLESS_VENV", "/opt/jupyter-jobs/rootless-venv")) / "bin" / "python"
IMAGES = {"jupyter-jobs/busybox:test": "jupyter-jobs_busybox_test.tar",
          "jupyter-jobs/python:test": "jupyter-jobs_python_test.tar"}


def podman_problem() -> Optional[str]:
    if os.geteuid() != 0:
        return "these tests make Unix users with useradd and act as them: run them as root"
    missing = [tool for tool in ("podman", "newuidmap", "slirp4netns", "useradd", "setpriv") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}: run `bash scripts/podman` as root"
    if not PYTHON.exists():
        return f"no {PYTHON}: run `bash scripts/podman` as root"
    return None


@dataclass
class PodmanUser:
    """A throwaway user with a home (Podman's storage), subordinate ids (useradd gives them) and,
    with `login`, a runtime folder as a login session has one; without, none (the server picks)."""

    name: str
    uid: int
    gid: int
    home: Path
    runtime: Path  # $XDG_RUNTIME_DIR, or the folder the backend makes where there is none
    login: bool

    @property
    def env(self) -> dict[str, str]:
        env = {"HOME": str(self.home)}
        if self.login:
            env["XDG_RUNTIME_DIR"] = str(self.runtime)
        return env

    @property
    def socket(self) -> Path:
        return self.runtime / "podman" / "podman.sock"

    def run(self, *argv: str, stdin: Any = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """A command as this user, with the environment the user's server has (as Podman sees it)."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "USER": self.name, "LOGNAME": self.name,
               **self.env, "XDG_RUNTIME_DIR": str(self.runtime)}
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *argv],
                              stdin=stdin, capture_output=True, env=env, check=check, timeout=timeout,
                              cwd=str(self.home))

    def podman(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        args = ("--cgroup-manager=cgroupfs", "--events-backend=file", *args)
        return self.run("podman", *args, **kwargs)

    def folder(self, path: Path) -> Path:
        """A folder of this user's (made if missing)."""
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        return path

    def server(self, base: Path, *extra: str) -> ServerProcess:
        """This user's own Jupyter server (not started), its root and data under `base`."""
        base = self.folder(base)
        os.chmod(base, 0o700)
        root = self.folder(base / "root")
        return ServerProcess(root, base / "data", extra=["--JobsApp.metrics_interval=0", *extra],
                             env=self.env, python=str(PYTHON), user=self.name)

    def clean(self) -> None:
        """Remove this user's containers (the engine's command line: no service needed)."""
        self.podman("rm", "--all", "--force", "--time=0", check=False, timeout=120)


def unix_account(name: str) -> pwd.struct_passwd:
    """A throwaway Unix user with a home (made once per machine; useradd gives it subordinate ids)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                       capture_output=True)
        return pwd.getpwnam(name)


def podman_user(name: str, login: bool) -> PodmanUser:
    """The user (made once per machine), its runtime folder and its test images."""
    require("rootless podman", podman_problem())
    entry = unix_account(name)
    runtime = Path(f"/run/user/{entry.pw_uid}") if login else \
        Path(tempfile.gettempdir()) / f"jupyter-jobs-podman-{entry.pw_uid}"
    user = PodmanUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), runtime, login)
    user.folder(runtime)
    os.chmod(runtime, 0o700)
    readable = user.run(str(PYTHON), "-c", "import jupyter_jobs", check=False)
    require("a Python the test users can run", None if readable.returncode == 0 else
            f"{name} cannot import jupyter_jobs with {PYTHON}: {readable.stderr.decode()[-300:]} "
            "(run `bash scripts/podman` as root again)")
    for image, tar in IMAGES.items():
        if user.podman("image", "exists", image, check=False).returncode == 0:
            continue
        cached = REPO / ".cache" / "images" / tar
        if cached.exists():
            with open(cached, "rb") as fh:
                user.podman("load", "--quiet", stdin=fh)
        else:
            saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            user.podman("load", "--quiet", stdin=saved.stdout)
            assert saved.wait() == 0, f"no {image}: run `bash scripts/docker-engine` first"
    return user


@pytest.fixture(scope="session")
def alice() -> PodmanUser:
    """A user logged in (XDG_RUNTIME_DIR=/run/user/<uid>, as logind makes it)."""
    return podman_user("jjpodman-alice", login=True)


@pytest.fixture(scope="session")
def bob() -> PodmanUser:
    """A user whose server was started without a login session: no XDG_RUNTIME_DIR."""
    return podman_user("jjpodman-bob", login=False)


@pytest.fixture
def user_servers():
    """Start users' servers; each is stopped (SIGTERM: its Podman service with it) at the end,
    and the user's containers are removed."""
    started: list[tuple[PodmanUser, ServerProcess]] = []
    base = Path(tempfile.mkdtemp(prefix="jjpodman-", dir="/tmp"))  # pytest's own is root's only
    os.chmod(base, 0o755)  # each user reaches (only) their own folder below it

    def start(user: PodmanUser, *extra: str) -> ServerProcess:
        server = user.server(base / f"{user.name}-{len(started)}", *extra)
        started.append((user, server))
        return server.start()

    yield start
    for user, server in started:
        server.stop(signal.SIGTERM)
        user.clean()
    shutil.rmtree(base, ignore_errors=True)
