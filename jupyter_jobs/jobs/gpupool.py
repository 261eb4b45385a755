"""One GPU pool per host, whoever asks: every jupyter_jobs service on the machine (one Jupyter
server per JupyterHub user, the CLI's embedded service) allocates from the same folder.

Why records in files: they need nothing running (no daemon to crash, no Docker engine for
`local` jobs, no root), they work for every backend that uses the host's GPUs, and what they
say can be checked against the kernel: each record names the process that holds the devices
(a local job's supervisor, a container's init), by pid and start time, so a record whose
process is gone is free again, and one whose server died is still held while its job runs.

Every other local user may be hostile, so the folder is read as a set of claims, each
believed only as far as the kernel vouches for it, and nothing in it is ever waited on:

- No lock. A global `flock` lets anyone who can open the file stop every server on the host.
  Instead each service writes only inside its own folder in the pool (sticky and
  world-writable, as /tmp), made with a random name (mkdtemp: nobody can make it first),
  mode 0755; its temporary files live there too, so no one can plant one in its way.
- Who says it: a record or ticket belongs to the uid that owns both the file and its folder
  (a folder others may write in counts for no one), never to a uid written in it. Files are
  opened O_NOFOLLOW|O_NONBLOCK and checked with fstat: regular files of a capped size only
  (a FIFO, a link, a device or a huge file is skipped, never read or waited on).
- Whose process: the holder (or, before the job runs, the server) must be alive, have the
  recorded start time and belong to that same uid; root's records may name any process. A
  non-root user's container may run as root on the host: its record then names a small
  keeper process the user owns that lives exactly as long as the container's init.
- Allocation without a lock: write the claim, then read everyone's records; if another claim
  or hold on a chosen device leaves more than `share` jobs on it, or a quota is
  exceeded, withdraw and retry (after a random pause, and on the queue's next pass).
  Of two racing claims the later writer reads after the earlier one was written, so at most
  `share` of them proceed. A job has one record under one name, replaced by renaming the new
  one over it: a reader that listed the name opens the old or the new, never nothing (a new
  name then the old one removed let a reader list the old name alone and find it gone).
- Order and quotas (domain/policy.py): the admin's `policy.json` in the pool's folder (believed
  only if root or the folder's owner owns it and no one else may write it; else the server's
  own configuration) says who goes first: priority (capped per user), fair share, age. A job
  that must wait leaves a ticket with its priority, and a job does not take devices a ticket
  ahead of it (by that order) could use. A ticket's priority is capped again by its reader,
  for the ticket's owner. A ticket counts only while fresh (its inode's ctime, which its
  owner cannot set) and only until it has fitted the free devices for TICKET_PATIENCE
  seconds without being taken: a ticket that never takes what it waits for holds no one back.
- Usage (fair share, daily quotas): a running job's GPU time starts at its holder process's
  start (the kernel's word, not the record's); a service adds its ended jobs' GPU time, by
  hour, to `usage.json` in its own folder. A user can only hide usage there by stopping their
  own jobs' records, which gives their devices away.

All calls block briefly on the file system and never on anyone else: the allocator still
runs them on its own thread, off the event loop and the default executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import pwd
import random
import secrets
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ..backends.base import start_time
from ..domain.policy import DAY, Policy, PolicyError, Usage, Waiting, hold, order, why_behind

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "/tmp/jupyter-jobs-gpus"
#: seconds a waiting job's ticket counts without being renewed (its server asks every half second)
TICKET_LIFE = 10.0
#: seconds an older ticket may fit the free devices without taking them before it is ignored
TICKET_PATIENCE = 3.0
#: the largest record or ticket read (bytes); anything bigger is skipped
MAX_RECORD = 16 * 1024
#: the most projects a ledger is read for
MAX_PROJECTS = 50
#: tries to claim within one call when a racing claim was seen (the queue retries anyway)
TRIES = 3
MARKER = "service.json"
LEDGER = "usage.json"
POLICY = "policy.json"
#: the largest policy file read (bytes)
MAX_POLICY = 256 * 1024
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

#: a process the user owns that lives as long as another (a container's init run as root)
KEEPER = """
import os, select, sys, time
pid, start = int(sys.argv[1]), int(sys.argv[2])
def started():
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])
try:
    fd = os.pidfd_open(pid)
except (OSError, AttributeError):
    fd = None
if fd is not None and started() == start:
    select.select([fd], [], [])
while started() == start:
    time.sleep(1)
"""


def _process(pid: Any) -> Optional[tuple[int, int]]:
    """(start time, real uid) of a live process, both read through one handle on it."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        dfd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        parts = []
        for name in ("stat", "status"):
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
            try:
                parts.append(os.read(fd, 1 << 16))
            finally:
                os.close(fd)
    except OSError:  # gone (ESRCH through the handle): not some later process of that pid
        return None
    finally:
        os.close(dfd)
    fields = parts[0].rsplit(b")", 1)[-1].split()
    uid = [line.split()[1] for line in parts[1].splitlines() if line.startswith(b"Uid:")]
    if len(fields) < 20 or fields[0] in (b"Z", b"X") or not uid:
        return None
    return int(fields[19]), int(uid[0])


def _alive(proc: Any, uid: int) -> bool:
    """Whether the process a record names still runs (the same one: pid and start time) and is
    the record owner's (root's records may name anyone's)."""
    if not isinstance(proc, dict):
        return False
    found = _process(proc.get("pid"))
    return found is not None and found[0] == proc.get("start") and (uid == 0 or found[1] == uid)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid(data: Any, ticket: bool) -> bool:
    """A record anyone could have written: only well-formed ones count."""
    if not isinstance(data, dict) or not isinstance(data.get("job"), str):
        return False
    if ticket:
        return isinstance(data.get("count"), int) and data["count"] > 0 and _number(data.get("since"))
    return isinstance(data.get("gpus"), list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                      for i in data["gpus"])


def _began(record: dict) -> float:
    """When a live record's GPU time began: its holder's start (the kernel's word); for a claim
    not yet held, what it says, but never before its server started."""
    held = record.get("holder")
    if isinstance(held, dict):
        return _epoch(held.get("start"))
    since = record.get("since")
    return max(since if _number(since) else 0.0, _epoch((record.get("server") or {}).get("start")))


def _key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


_TICKS = os.sysconf("SC_CLK_TCK")
_BOOT: list[float] = []


def _epoch(ticks: Any) -> float:
    """A process start time (clock ticks since boot, as /proc gives it) in seconds since the epoch."""
    if not _BOOT:
        with open("/proc/stat", "rb") as fh:
            _BOOT.append(float(next(line for line in fh if line.startswith(b"btime")).split()[1]))
    return _BOOT[0] + (ticks if _number(ticks) else 0) / _TICKS


def _user(uid: int, names: dict[int, str] = {}) -> str:  # noqa: B006 (a cache on purpose)
    if uid not in names:
        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            names[uid] = f"uid {uid}"
    return names[uid]


def _ledger_usage(ledger: Any, now: float, half_life_hours: float, into: Usage) -> None:
    """Add a ledger's ended GPU time ({"hours": {hour: GPU-seconds}, "carry": [decayed, at]}) to `into`."""
    if not isinstance(ledger, dict):
        return
    rate = math.log(2) / (half_life_hours * 3600.0)
    hours = ledger.get("hours")
    for hour, seconds in (hours.items() if isinstance(hours, dict) else ()):
        try:
            start = float(hour)
        except ValueError:
            continue
        if not _number(seconds) or seconds <= 0 or start > now:
            continue
        if start + 3600 > now - DAY:
            into.day += seconds / 3600.0
        into.decayed += seconds / 3600.0 * math.exp(-rate * max(0.0, now - start - 1800))
    carry = ledger.get("carry")
    if isinstance(carry, list) and len(carry) == 2 and all(_number(v) for v in carry) and carry[0] > 0:
        into.decayed += carry[0] * math.exp(-rate * max(0.0, now - carry[1]))


class PoolError(ValueError):
    """The pool's folder cannot be used as it is (said at the server's start)."""


class HostGPUPool:
    """GPU indices handed out across every service on this host; `share` jobs per device."""

    #: the interpreter that runs keepers (one the server's user can run)
    python = sys.executable

    def __init__(self, folder: Path, devices: list[int], share: int, service_id: str, per_user: int = 0,
                 policy: Optional[Policy] = None):
        self.folder, self.devices, self.share = Path(folder), devices, max(1, share)
        self.base_policy = policy or Policy()  # used while the pool's folder has no policy file of the admin's
        if per_user:
            self.base_policy = Policy.from_json({"default": {"gpus": per_user}}) if policy is None else policy
        self._policy: tuple[Any, Policy] = (None, self.base_policy)
        self.policy_problem: Optional[str] = None  # why the admin's policy file is not applied, if so
        self.prefix = hashlib.sha256(service_id.encode()).hexdigest()[:12]  # this service's own folder
        self.uid = os.geteuid()
        me = os.getpid()
        self.server = {"pid": me, "start": start_time(me)}
        self._fitting: dict[tuple[str, str], float] = {}  # tickets that fit the free devices, since when
        self._keepers: list[subprocess.Popen] = []
        self.own = ""  # the name of this service's folder in the pool
        self._prepare()

    # -- folders --------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.folder.mkdir(mode=0o1777, parents=True, exist_ok=True)
            info = self.folder.lstat()
        except OSError as exc:
            raise PoolError(f"the GPU pool folder {self.folder} cannot be made: {exc}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise PoolError(f"the GPU pool folder {self.folder} is not a folder (a link or a file)")
        if info.st_uid == self.uid and stat.S_IMODE(info.st_mode) != 0o1777:
            os.chmod(self.folder, 0o1777)  # sticky: every user adds a folder, each removes only its own
        elif info.st_uid not in (0, self.uid) or not info.st_mode & stat.S_ISVTX:
            raise PoolError(f"the GPU pool folder {self.folder} must be sticky and owned by root or you "
                            "(c.JobsApp.gpu_pool_dir)")
        try:
            self._own_fd().close()
        except OSError as exc:
            raise PoolError(f"the GPU pool folder {self.folder} cannot be used: {exc}") from None

    def _own_fd(self) -> _Fd:
        """This service's folder, found again (by its marker) or made anew."""
        top = _Fd(os.open(self.folder, _DIR))
        try:
            if self.own:
                with contextlib.suppress(OSError):
                    fd = _Fd(os.open(self.own, _DIR, dir_fd=top.fd))
                    if self._mine(fd):
                        return fd
                    fd.close()
            for name in os.listdir(top.fd):
                try:
                    fd = _Fd(os.open(name, _DIR, dir_fd=top.fd))
                except OSError:
                    continue
                marker = _load(fd.fd, MARKER, self.uid) if self._mine(fd) else None
                if isinstance(marker, dict) and marker.get("service") == self.prefix:
                    self.own = name
                    return fd
                fd.close()
            made = tempfile.mkdtemp(prefix="service-", dir=self.folder)  # a name no one could take first
            os.chmod(made, 0o755)
            fd = _Fd(os.open(Path(made).name, _DIR, dir_fd=top.fd))
            self.own = Path(made).name
            self._write(fd.fd, MARKER, {"service": self.prefix, "server": self.server})
            return fd
        finally:
            top.close()

    def _mine(self, fd: _Fd) -> bool:
        info = os.fstat(fd.fd)
        return stat.S_ISDIR(info.st_mode) and info.st_uid == self.uid and not info.st_mode & 0o022

    @staticmethod
    def _write(dfd: int, name: str, data: dict) -> None:
        """Written whole under a temporary name in our own folder, then given its name."""
        tmp = f".tmp-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o644)  # readable by every server, whatever the umask
            os.write(fd, json.dumps(data).encode())
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)

    # -- reading everyone's records -------------------------------------------------------
    def _read(self) -> tuple[list[dict], list[dict], list[tuple[int, Any]]]:
        """Live records and tickets of every service, each with its owner's uid (`_uid`), its
        folder (`_folder`) and, for records, when its GPU time began (`_start`); and each
        service's ledger of ended GPU time, by owner. Stale records of this service are
        removed, others' ignored."""
        self._keepers = [k for k in self._keepers if k.poll() is None]
        records: dict[tuple[str, str], dict] = {}
        tickets: list[dict] = []
        ledgers: list[tuple[int, Any]] = []
        now = time.time()
        top = _Fd(os.open(self.folder, _DIR))
        try:
            for folder in os.listdir(top.fd):
                try:
                    dfd = _Fd(os.open(folder, _DIR, dir_fd=top.fd))
                except OSError:
                    continue  # not a folder, a link, gone
                try:
                    info = os.fstat(dfd.fd)
                    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
                        continue  # a folder others may write in is nobody's word
                    self._read_folder(dfd.fd, folder, info.st_uid, now, records, tickets, ledgers)
                except OSError:
                    continue
                finally:
                    dfd.close()
        finally:
            top.close()
        return list(records.values()), tickets, ledgers

    def _read_folder(self, dfd: int, folder: str, uid: int, now: float, records: dict, tickets: list,
                     ledgers: list) -> None:
        mine = folder == self.own and uid == self.uid
        for name in os.listdir(dfd):
            if name == LEDGER:
                ledgers.append((uid, _load(dfd, name, uid)))
                continue
            ticket = name.startswith("wait-")
            if not (ticket or name.startswith("gpu-")) or not name.endswith(".json"):
                continue
            found = _load(dfd, name, uid, with_stat=True)
            if found is None:
                continue
            data, info = found
            if not _valid(data, ticket):
                continue
            held = data.get("holder")
            live = _alive(held, uid) if held else _alive(data.get("server"), uid)
            if ticket and now - info.st_ctime >= TICKET_LIFE:
                live = False
            if not live:
                if mine:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dfd)
                continue
            data.update(_uid=uid, _folder=folder, _name=name)
            if ticket:
                tickets.append(data)
                continue
            data["_start"] = _began(data)
            key = (folder, data["job"])  # a job's old and new record, both there for a moment
            if key in records:
                records[key]["gpus"] = sorted(set(records[key]["gpus"]) | set(data["gpus"]))
            else:
                records[key] = data

    def _used(self, records: list[dict]) -> dict[int, int]:
        used = dict.fromkeys(self.devices, 0)
        for record in records:
            for i in set(record.get("gpus", [])):
                if i in used:
                    used[i] += 1
        return used

    def _usage(self, records: list[dict], ledgers: list[tuple[int, Any]], policy: Policy
               ) -> tuple[dict[str, Usage], dict[str, Usage]]:
        """Each user's and each project's GPU use: live records (from when their process
        began) and the ledgers' ended time, by the files' owners."""
        now, half = time.time(), policy.half_life_hours
        rate = math.log(2) / (half * 3600.0)
        users: dict[str, Usage] = {}
        projects: dict[str, Usage] = {}
        for record in records:
            gpus, start = len(set(record["gpus"])), min(now, record["_start"])
            project = record.get("project")
            for used in (users.setdefault(_user(record["_uid"]), Usage()),
                         projects.setdefault(project, Usage()) if isinstance(project, str) else None):
                if used is not None:
                    used.gpus += gpus
                    used.running += 1
                    used.day += gpus * (now - max(start, now - DAY)) / 3600.0
                    used.decayed += gpus * (1 - math.exp(-rate * (now - start))) / rate / 3600.0
        for uid, ledger in ledgers:
            _ledger_usage(ledger, now, half, users.setdefault(_user(uid), Usage()))
            found = ledger.get("projects") if isinstance(ledger, dict) else None
            for project, part in list(found.items())[:MAX_PROJECTS] if isinstance(found, dict) else ():
                _ledger_usage(part, now, half, projects.setdefault(str(project), Usage()))
        return users, projects

    def _is_me(self, entry: dict, owner: str) -> bool:
        return entry["_folder"] == self.own and entry["_uid"] == self.uid and entry["job"] == owner

    def _ahead(self, tickets: list[dict], me: Waiting, owner: str, free: int, policy: Policy,
               users: dict[str, Usage]) -> list[Waiting]:
        """Waiting jobs of the host that go before this one (by the policy's order) and could take
        the free devices, and still may (see TICKET_PATIENCE)."""
        now, seen, rivals = time.monotonic(), set(), []
        for t in tickets:
            key = (t["_folder"], t["job"])
            seen.add(key)
            if self._is_me(t, owner) or t["count"] > free:
                self._fitting.pop(key, None)
                continue
            if now - self._fitting.setdefault(key, now) < TICKET_PATIENCE:
                user = _user(t["_uid"])
                asked = t.get("priority")
                asked = asked if isinstance(asked, int) and not isinstance(asked, bool) else 0
                project = t.get("project")
                rivals.append(Waiting(f"{t['_folder']}/{t['job']}", user, t["count"], t["since"],
                                      policy.priority(user, asked), project if isinstance(project, str) else None))
        for key in set(self._fitting) - seen:
            del self._fitting[key]
        ranked = order([*rivals, me], users)
        return ranked[:ranked.index(me)]

    def policy(self) -> Policy:
        """The admin's policy file in the pool's folder, if it is the admin's (root or the
        folder's owner owns it, no one else may write it, it parses); else this server's own."""
        try:
            top = _Fd(os.open(self.folder, _DIR))
        except OSError:
            return self.base_policy
        try:
            owner = os.fstat(top.fd).st_uid
            try:
                info = os.stat(POLICY, dir_fd=top.fd, follow_symlinks=False)
            except FileNotFoundError:
                self._policy, self.policy_problem = (None, self.base_policy), None
                return self.base_policy
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size, info.st_uid, info.st_mode)
            if stamp == self._policy[0]:
                return self._policy[1]
            problem, policy = None, self.base_policy
            if info.st_uid not in (0, owner) or info.st_mode & 0o022 or not stat.S_ISREG(info.st_mode):
                problem = "it is not the admin's (owned by root or the folder's owner, writable by no one else)"
            else:
                data = _load(top.fd, POLICY, info.st_uid, limit=MAX_POLICY)
                try:
                    policy = Policy.from_json(data)
                except PolicyError as exc:
                    problem = str(exc) if data is not None else "it is not readable JSON"
            if problem:
                log.error("the GPU policy %s is not applied: %s", self.folder / POLICY, problem)
            self._policy, self.policy_problem = (stamp, policy), problem
            return policy
        finally:
            top.close()

    # -- this service's records ----------------------------------------------------------
    def _record(self, owner: str, indices: list[int], holder: Optional[dict], project: Optional[str] = None,
                since: Optional[float] = None) -> None:
        """The job's record, written anew over its one name (atomically: never a moment without);
        its project and start kept from the one it replaces."""
        key = _key(owner)
        fd = self._own_fd()
        try:
            name = f"gpu-{key}.json"
            before = _load(fd.fd, name, self.uid)
            if isinstance(before, dict) and before.get("job") == owner:
                project = project if project is not None else before.get("project")
                since = since if since is not None else before.get("since")
            self._write(fd.fd, name, {"gpus": indices, "server": self.server, "holder": holder, "job": owner,
                                      "since": since if _number(since) else time.time(), "project": project})
            for old in os.listdir(fd.fd):  # names an earlier version gave the job's records
                if old.startswith(f"gpu-{key}-"):
                    with contextlib.suppress(OSError):
                        os.unlink(old, dir_fd=fd.fd)
        finally:
            fd.close()

    def _remove(self, owner: str, kinds: tuple[str, ...] = ("gpu", "wait")) -> None:
        key = _key(owner)
        fd = self._own_fd()
        try:
            for name in os.listdir(fd.fd):
                if any(name.startswith(f"{kind}-{key}") for kind in kinds):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd.fd)
        finally:
            fd.close()

    def _ticket(self, owner: str, count: int, since: float, priority: int, project: Optional[str]) -> None:
        fd = self._own_fd()
        try:
            self._write(fd.fd, f"wait-{_key(owner)}.json", {"count": count, "since": since, "server": self.server,
                                                            "job": owner, "priority": priority, "project": project})
        finally:
            fd.close()

    def _account(self, owner: str) -> None:
        """The job's GPU time so far (its live record's, from when its process began) added to
        this service's ledger, by hour; hours older than a day folded into one decayed sum."""
        fd = self._own_fd()
        try:
            record = _load(fd.fd, f"gpu-{_key(owner)}.json", self.uid)
            if not _valid(record, False) or record.get("job") != owner:
                return
            live = record.get("holder") or record.get("server")
            if not _alive(live, self.uid):
                return  # ended unseen (a restart): its time is unknown, not made up
            now, start = time.time(), min(time.time(), _began(record))
            ledger = _load(fd.fd, LEDGER, self.uid)
            ledger = ledger if isinstance(ledger, dict) else {}
            gpus = len(set(record["gpus"]))
            half = self.policy().half_life_hours
            _add_span(ledger, gpus, start, now, half)
            project = record.get("project")
            if isinstance(project, str):
                projects = ledger.setdefault("projects", {})
                if project in projects or len(projects) < MAX_PROJECTS:
                    _add_span(projects.setdefault(project, {}), gpus, start, now, half)
            self._write(fd.fd, LEDGER, ledger)
        finally:
            fd.close()

    def _keeper(self, holder: dict) -> dict:
        """A process of ours that lives as long as `holder` (a container's init run as root)."""
        keeper = subprocess.Popen([self.python, "-I", "-c", KEEPER, str(holder["pid"]), str(holder["start"])],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True, close_fds=True, cwd="/")
        self._keepers.append(keeper)
        return {"pid": keeper.pid, "start": start_time(keeper.pid), "for": holder}

    # -- the allocator's interface (blocking briefly: call from the allocator's thread) ---------
    def allocate(self, count: int, owner: str, since: float, priority: int = 0, project: Optional[str] = None
                 ) -> tuple[Optional[list[int]], int, Optional[str]]:
        """`count` devices for job `owner` (queued at `since`), least used first, or None: then
        it holds a ticket (unless a quota holds it), and no job behind it in the policy's order,
        of any service, takes devices it could use. Also returns how many device slots were
        free, and why it waits when a rule (a quota, a job ahead) holds it, in words."""
        policy = self.policy()
        me = _user(self.uid)
        mine = Waiting(f"{self.own}/{owner}", me, count, since, policy.priority(me, priority), project)
        free, why = 0, None
        for attempt in range(TRIES):
            records, tickets, ledgers = self._read()
            others = [r for r in records if not self._is_me(r, owner)]
            used = self._used(others)
            free = sum(max(0, self.share - n) for n in used.values())
            users, projects = self._usage(others, ledgers, policy)
            why = hold(mine, policy, users, projects)
            if why:  # waits for this user's (or project's) own jobs: holds no one back
                self._remove(owner)
                return None, free, why
            candidates = sorted((n, i) for i, n in used.items() if n < self.share)
            ahead = self._ahead(tickets, mine, owner, free, policy, users)
            if ahead:
                why = why_behind(mine, ahead, users)
                break
            if len(candidates) < count:
                break
            chosen = sorted(i for _, i in candidates[:count])
            self._record(owner, chosen, None, project, time.time())
            # every claim written before ours is seen now; one written after sees ours
            records, _, ledgers = self._read()
            after = [r for r in records if not self._is_me(r, owner)]
            crowded = self._used(after)
            if all(crowded.get(i, 0) < self.share for i in chosen) and not hold(mine, policy,
                                                                                 *self._usage(after, ledgers, policy)):
                self._remove(owner, ("wait",))
                return chosen, free - count, None
            self._remove(owner, ("gpu",))  # a racing claim: withdraw, try again a moment later
            if attempt + 1 < TRIES:
                time.sleep(random.uniform(0.005, 0.05))
        self._ticket(owner, count, since, priority, project)
        return None, free, why

    def held(self, owner: str, indices: list[int], holder: Optional[dict[str, Any]]) -> None:
        """The job runs: its devices are held by its own process from now on (also if this
        server goes away), or by this server again (a job found at start-up)."""
        if holder and self.uid != 0:
            found = _process(holder.get("pid"))
            if found is not None and found[0] == holder.get("start") and found[1] != self.uid:
                try:  # not ours (a container's root init): a keeper of ours stands in for it
                    holder = self._keeper(holder)
                except OSError as exc:
                    log.warning("no keeper for job %s's devices (%s): this server holds them", owner, exc)
                    holder = None
        self._record(owner, indices, holder)

    def claim(self, owner: str, indices: list[int]) -> None:
        """A job this service found running at start-up: its record stays as it is (held by the
        job's process); one that went missing or names no live process is written again, held
        by this server."""
        if not any(self._is_me(r, owner) for r in self._read()[0]):
            self._record(owner, indices, None)

    def release(self, owner: str) -> None:
        """The job is over: its GPU time goes to the ledger, its record and ticket away."""
        self._account(owner)
        self._remove(owner)

    def usage(self) -> dict[int, int]:
        """Jobs (of any service) on each device now."""
        return self._used(self._read()[0])


def _add_span(ledger: dict, gpus: int, start: float, end: float, half_life_hours: float) -> None:
    """GPU-seconds from `start` to `end` into the ledger's hours; hours older than a day (and
    an hour) folded into its decayed carry, so that it stays small."""
    hours = ledger.get("hours")
    hours = {k: v for k, v in hours.items() if _number(v)} if isinstance(hours, dict) else {}
    at = start
    while at < end:
        hour = math.floor(at / 3600) * 3600
        upto = min(end, hour + 3600)
        hours[str(hour)] = hours.get(str(hour), 0.0) + gpus * (upto - at)
        at = upto
    cutoff = end - DAY - 3600
    old = {k: v for k, v in hours.items() if float(k) < cutoff}
    if old:
        folded = Usage()
        _ledger_usage({"hours": old, "carry": ledger.get("carry")}, end, half_life_hours, folded)
        ledger["carry"] = [folded.decayed, end]
        hours = {k: v for k, v in hours.items() if k not in old}
    ledger["hours"] = hours


class _Fd:
    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _load(dfd: int, name: str, uid: int, with_stat: bool = False, limit: int = MAX_RECORD) -> Any:
    """A small regular file of `uid` in folder `dfd`, parsed as JSON, or None: never follows
    a link, never waits (a FIFO, a device), never reads much."""
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
            return None
        fd = os.open(name, _READ, dir_fd=dfd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_size > limit:
                return None
            raw = os.read(fd, limit + 1)
        finally:
            os.close(fd)
        if len(raw) > limit:
            return None
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return (data, info) if with_stat else data
