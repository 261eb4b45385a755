"""The host's GPU rule between real Unix users: each user's service is a process running as
that user (made with useradd), all on one pool folder, as JupyterHub users' servers are.
Priority capped by the admin, fair share by the ledger of GPU time used, quotas in words, and
a policy file planted by another user ignored."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

import pytest

from jupyter_jobs.backends.base import start_time
from jupyter_jobs.jobs.gpupool import HostGPUPool  # imported as root: the users cannot read the venv
from jupyter_jobs.jobs.poolshare import POLICY
from support import host_pool
from test_gpu_pool_trust import _user

ALICE, BOB, MALLORY = "jjpool-alice", "jjpool-bob", "jjpool-mallory"


class As:
    """A pool service in a child process running as `name` (its server: alive while it lives)."""

    def __init__(self, name: str, pool: Path, devices: int = 2):
        account = _user(name)
        self.name = name
        ours, theirs = Pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the user's server
            code = 0
            try:
                ours.close()
                os.setgroups([])
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
                _serve(theirs, pool, devices, name)
            except BaseException as exc:  # told to the test's output
                print(f"{name}'s service failed: {exc!r}", flush=True)
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        self.conn = ours

    def __call__(self, method: str, *args):
        self.conn.send((method, args))
        ok, value = self.conn.recv()
        if not ok:
            raise AssertionError(f"{self.name}: {value}")
        return value

    def stop(self) -> None:
        """Its server ends (told so: a later user's child holds this pipe's end open too)."""
        self.conn.send(("stop", ()))
        self.conn.close()
        os.waitpid(self.pid, 0)


def _serve(conn: Connection, pool: Path, devices: int, name: str) -> None:
    service = HostGPUPool(pool, list(range(devices)), 1, f"{name}'s server")
    me = {"pid": os.getpid(), "start": start_time(os.getpid())}
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            return
        if method == "stop":
            return
        try:
            if method == "hold":  # a job that runs in this very process
                service.held(args[0], args[1], me)
                value = None
            elif method == "policy":
                value = (service.admin.read().default.gpus, service.admin.problem)
            else:
                value = getattr(service, method)(*args)
            conn.send((True, value))
        except Exception as exc:  # told to the test
            conn.send((False, repr(exc)))


@pytest.fixture
def pool():
    with host_pool("jjpolicy-") as folder:
        yield folder


@pytest.fixture
def users(pool):
    made: list[As] = []

    def start(*names: str, devices: int = 2) -> list[As]:
        for name in names:
            made.append(As(name, pool, devices))
        return made[-len(names):]

    yield start
    for user in made:
        user.stop()


def admin_policy(pool: Path, policy: dict) -> None:
    """The admin (root, who owns the pool's folder) writes the host's rule."""
    path = pool / "policy.json"
    path.write_text(json.dumps(policy))
    os.chmod(path, 0o644)


def busy(pool: Path, devices: list[int]):
    """Root's service holding devices (the test process holds them): released to free them."""
    root = HostGPUPool(pool, [0, 1], 1, "root's server")
    for i in devices:
        assert root.allocate(1, f"busy{i}", since=0.0)[0] == [i]
    return root


def test_the_user_who_used_less_goes_first_whatever_the_age(pool, users):
    alice, bob = users(ALICE, BOB)
    assert alice("allocate", 1, "warmup", 0.0)[0] == [0]
    alice("hold", "warmup", [0])
    time.sleep(1.0)
    alice("release", "warmup")  # alice has used a GPU-second; bob nothing
    root = busy(pool, [0, 1])
    assert alice("allocate", 1, "a1", 1.0)[0] is None  # older
    assert bob("allocate", 1, "b1", 2.0)[0] is None
    root.release("busy0")
    got, _, why = alice("allocate", 1, "a1", 1.0)
    assert got is None
    assert re.fullmatch(f"{ALICE} has used [1-9] GPU-s lately, more than {BOB} \\(0 GPU-s\\); #2 for a GPU", why), why
    assert bob("allocate", 1, "b1", 2.0)[0] == [0]
    root.release("busy1")
    assert alice("allocate", 1, "a1", 1.0)[0] == [1]


def test_priority_goes_first_within_the_admins_cap(pool, users):
    admin_policy(pool, {"users": {ALICE: {"max_priority": 5}}})
    alice, bob = users(ALICE, BOB)
    root = busy(pool, [0, 1])
    assert bob("allocate", 1, "b1", 1.0, 100)[0] is None  # asks for 100: capped at 0 by every reader
    assert alice("allocate", 1, "a1", 2.0, 5)[0] is None
    root.release("busy0")
    got, _, why = bob("allocate", 1, "b1", 1.0, 100)
    assert got is None and why.startswith(f"{ALICE}'s job has priority 5, more than 0"), why
    assert alice("allocate", 1, "a1", 2.0, 5)[0] == [0]


def test_quotas_hold_in_words_and_a_planted_policy_is_nobodys(pool, users):
    mallory_policy = {"default": {"gpus": 0}, "users": {MALLORY: {"max_priority": 1000}}}
    (alice,) = users(ALICE, devices=4)
    # mallory plants the policy file first, in the sticky folder anyone may add to
    users(MALLORY)
    mallory_path = pool / POLICY
    subprocess.run(f"runuser -u {MALLORY} -- /bin/sh -c 'umask 022; echo {json.dumps(json.dumps(mallory_policy))} "
              f"> {mallory_path}'", shell=True, check=True)
    assert mallory_path.stat().st_uid == _user(MALLORY).pw_uid
    gpus, problem = alice("policy")
    assert gpus is None and "not the admin's" in problem
    assert alice("allocate", 1, "a1", 1.0)[0] == [0], "her policy (no GPUs for anyone) is not applied"
    alice("release", "a1")
    mallory_path.unlink()
    admin_policy(pool, {"default": {"gpus": 2, "running": 3}, "projects": {"vision": {"gpus": 3}}})
    assert alice("allocate", 2, "a2", 1.0, 0, "vision")[0] == [0, 1]
    got, _, why = alice("allocate", 1, "a3", 2.0, 0, None)
    assert got is None and why == f"{ALICE} holds 2 GPUs of 2 allowed at once"
    bob = users(BOB, devices=4)[0]
    assert bob("allocate", 1, "b1", 3.0)[0] == [2], "a job its own quota holds holds no one back"
    assert [(q["user"], q["waiting"]) for q in bob("host", True)["queue"]] == \
        [(ALICE, f"{ALICE} holds 2 GPUs of 2 allowed at once")], "but it is in the host's queue, saying why"
    bob("release", "b1")
    alice("release", "a3")
    admin_policy(pool, {"default": {"gpus": 4}, "projects": {"vision": {"gpus": 3}}})
    got, _, why = alice("allocate", 2, "a4", 3.0, 0, "vision")
    assert got is None and why == "project vision holds 2 GPUs of 3 allowed at once"
    assert alice("allocate", 1, "a5", 4.0, 0, "vision")[0] == [2]
    admin_policy(pool, {"default": {"gpus": "two"}})
    assert "default.gpus: 'two' is not a whole number" in alice("policy")[1]
