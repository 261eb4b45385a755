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
import logging
import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ..backends.base import start_time
from ..domain.policy import Policy, Usage, Waiting, hold, why_behind
from .poolfiles import DIR, Fd, Parsed, load, number, write
from .poolshare import AdminPolicy, Rivals, account, contenders, host_view, usage, user_name

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "/tmp/jupyter-jobs-gpus"
#: seconds a waiting job's ticket counts without being renewed (its server asks every half second)
TICKET_LIFE = 10.0
#: tries to claim within one call when a racing claim was seen (the queue retries anyway)
TRIES = 3
MARKER = "service.json"
LEDGER = "usage.json"

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


def _alive(proc: Any, uid: int, seen: Optional[dict[Any, Optional[tuple[int, int]]]] = None) -> bool:
    """Whether the process a record names still runs (the same one: pid and start time) and is
    the record owner's (root's records may name anyone's). `seen`: processes already looked at
    in this reading of the pool (a server's many tickets name the same server)."""
    if not isinstance(proc, dict):
        return False
    pid = proc.get("pid")
    if seen is None:
        found = _process(pid)
    elif isinstance(pid, int) and pid in seen:
        found = seen[pid]
    else:
        found = seen[pid] = _process(pid) if isinstance(pid, int) else None
    return found is not None and found[0] == proc.get("start") and (uid == 0 or found[1] == uid)


def _valid(data: Any, ticket: bool) -> bool:
    """A record anyone could have written: only well-formed ones count."""
    if not isinstance(data, dict) or not isinstance(data.get("job"), str):
        return False
    if ticket:
        return isinstance(data.get("count"), int) and data["count"] > 0 and number(data.get("since"))
    return isinstance(data.get("gpus"), list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                      for i in data["gpus"])


def _began(record: dict) -> float:
    """When a live record's GPU time began: its holder's start (the kernel's word); for a claim
    not yet held, what it says, but never before its server started."""
    held = record.get("holder")
    if isinstance(held, dict):
        return _epoch(held.get("start"))
    since = record.get("since")
    return max(since if number(since) else 0.0, _epoch((record.get("server") or {}).get("start")))


def _key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


_TICKS = os.sysconf("SC_CLK_TCK")
_BOOT: list[float] = []


def _epoch(ticks: Any) -> float:
    """A process start time (clock ticks since boot, as /proc gives it) in seconds since the epoch."""
    if not _BOOT:
        with open("/proc/stat", "rb") as fh:
            _BOOT.append(float(next(line for line in fh if line.startswith(b"btime")).split()[1]))
    return _BOOT[0] + (ticks if number(ticks) else 0) / _TICKS


def _read_folder(dfd: int, folder: str, uid: int, now: float, mine: Optional[dict], records: dict, tickets: list,
                 ledgers: list, seen: dict, parsed: Parsed) -> None:
    """One service's folder: its live records and tickets, its ledger. In this service's own
    folder (`mine`: its server), stale tickets and an earlier server's stale records are
    removed; its own ended jobs' records stay until their release puts their time in the ledger."""
    inode = os.fstat(dfd).st_ino
    for name in os.listdir(dfd):
        if name == LEDGER:
            ledgers.append((uid, load(dfd, name, uid)))
            continue
        ticket = name.startswith("wait-")
        if not (ticket or name.startswith("gpu-")) or not name.endswith(".json"):
            continue
        found = parsed.load(dfd, inode, name, uid)
        if found is None:
            continue
        data, info = found
        if not _valid(data, ticket):
            continue
        held = data.get("holder")
        live = _alive(held, uid, seen) if held else _alive(data.get("server"), uid, seen)
        if ticket and now - info.st_ctime >= TICKET_LIFE:
            live = False
        if not live:
            if mine is not None and (ticket or data.get("server") != mine):
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


class PoolError(ValueError):
    """The pool's folder cannot be used as it is (said at the server's start)."""


class HostGPUPool:
    """GPU indices handed out across every service on this host; `share` jobs per device."""

    #: the interpreter that runs keepers (one the server's user can run)
    python = sys.executable

    def __init__(self, folder: Path, devices: list[int], share: int, service_id: str,
                 policy: Optional[Policy] = None):
        self.folder, self.devices, self.share = Path(folder), devices, max(1, share)
        # the server's own rule (its config), used while the pool's folder has no admin's policy file
        self.admin = AdminPolicy(self.folder, policy or Policy())
        self.prefix = hashlib.sha256(service_id.encode()).hexdigest()[:12]  # this service's own folder
        self.uid = os.geteuid()
        me = os.getpid()
        self.server = {"pid": me, "start": start_time(me)}
        self.rivals = Rivals()
        self._parsed = Parsed()  # files of the last reading, not parsed again while unchanged
        self._keepers: list[subprocess.Popen] = []
        self.own = ""  # the name of this service's folder in the pool
        self._prepare()
        self.admin.read()  # read now: the queue refuses by it before the first allocation

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

    def _own_fd(self) -> Fd:
        """This service's folder, found again (by its marker) or made anew."""
        top = Fd(os.open(self.folder, DIR))
        try:
            if self.own:
                with contextlib.suppress(OSError):
                    fd = Fd(os.open(self.own, DIR, dir_fd=top.fd))
                    if self._mine(fd):
                        return fd
                    fd.close()
            for name in os.listdir(top.fd):
                try:
                    fd = Fd(os.open(name, DIR, dir_fd=top.fd))
                except OSError:
                    continue
                marker = load(fd.fd, MARKER, self.uid) if self._mine(fd) else None
                if isinstance(marker, dict) and marker.get("service") == self.prefix:
                    self.own = name
                    return fd
                fd.close()
            made = tempfile.mkdtemp(prefix="service-", dir=self.folder)  # a name no one could take first
            os.chmod(made, 0o755)
            fd = Fd(os.open(Path(made).name, DIR, dir_fd=top.fd))
            self.own = Path(made).name
            write(fd.fd, MARKER, {"service": self.prefix, "server": self.server})
            return fd
        finally:
            top.close()

    def _mine(self, fd: Fd) -> bool:
        info = os.fstat(fd.fd)
        return stat.S_ISDIR(info.st_mode) and info.st_uid == self.uid and not info.st_mode & 0o022

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
        seen: dict[Any, Optional[tuple[int, int]]] = {}  # processes looked at in this reading
        self._parsed.begin()
        now = time.time()
        top = Fd(os.open(self.folder, DIR))
        try:
            for folder in os.listdir(top.fd):
                try:
                    dfd = Fd(os.open(folder, DIR, dir_fd=top.fd))
                except OSError:
                    continue  # not a folder, a link, gone
                try:
                    info = os.fstat(dfd.fd)
                    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
                        continue  # a folder others may write in is nobody's word
                    mine = self.server if folder == self.own and info.st_uid == self.uid else None
                    _read_folder(dfd.fd, folder, info.st_uid, now, mine, records, tickets, ledgers, seen,
                                 self._parsed)
                except OSError:
                    continue
                finally:
                    dfd.close()
        finally:
            top.close()
        return list(records.values()), tickets, ledgers

    def _used(self, records: list[dict]) -> dict[int, int]:
        used = dict.fromkeys(self.devices, 0)
        for record in records:
            for i in set(record.get("gpus", [])):
                if i in used:
                    used[i] += 1
        return used

    @property
    def user(self) -> str:
        return user_name(self.uid)

    def _is_me(self, entry: dict, owner: str) -> bool:
        return entry["_folder"] == self.own and entry["_uid"] == self.uid and entry["job"] == owner

    # -- this service's records ----------------------------------------------------------
    def _record(self, owner: str, indices: list[int], holder: Optional[dict], project: Optional[str] = None,
                since: Optional[float] = None) -> None:
        """The job's record, written anew over its one name (atomically: never a moment without);
        its project and start kept from the one it replaces."""
        key = _key(owner)
        fd = self._own_fd()
        try:
            name = f"gpu-{key}.json"
            before = load(fd.fd, name, self.uid)
            if isinstance(before, dict) and before.get("job") == owner:
                project = project if project is not None else before.get("project")
                since = since if since is not None else before.get("since")
            write(fd.fd, name, {"gpus": indices, "server": self.server, "holder": holder, "job": owner,
                                      "since": since if number(since) else time.time(), "project": project})
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
            write(fd.fd, f"wait-{_key(owner)}.json", {"count": count, "since": since, "server": self.server,
                                                            "job": owner, "priority": priority, "project": project})
        finally:
            fd.close()

    def _account(self, owner: str) -> None:
        """The job's GPU time (from when its process began until now, its release) added to
        this service's ledger, by hour; hours older than a day folded into one decayed sum."""
        fd = self._own_fd()
        try:
            record = load(fd.fd, f"gpu-{_key(owner)}.json", self.uid)
            if not _valid(record, False) or record.get("job") != owner or record.get("server") != self.server:
                return  # none, or an earlier server's: when it ended is unknown, its time is not made up
            now = time.time()
            ledger = load(fd.fd, LEDGER, self.uid)
            write(fd.fd, LEDGER, account(ledger if isinstance(ledger, dict) else {}, len(set(record["gpus"])),
                                         min(now, _began(record)), now, record.get("project"),
                                         self.admin.read().half_life_hours))
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
        policy = self.admin.read()
        me = user_name(self.uid)
        mine = Waiting(f"{self.own}/{owner}", me, count, since, policy.priority(me, priority), project, priority)
        free, why = 0, None
        for attempt in range(TRIES):
            records, tickets, ledgers = self._read()
            others = [r for r in records if not self._is_me(r, owner)]
            used = self._used(others)
            free = sum(max(0, self.share - n) for n in used.values())
            users, projects = usage(others, ledgers, policy)
            why = hold(mine, policy, users, projects)
            if why:  # waits for this user's (or project's) own jobs; its ticket holds no one back
                break
            candidates = sorted((n, i) for i, n in used.items() if n < self.share)
            ahead = self.rivals.ahead(tickets, mine, lambda t: self._is_me(t, owner), free, policy, users, projects)
            if ahead:
                why = why_behind(mine, ahead, users)
                break
            if len(candidates) < count:
                why = (f"needs {count} GPU(s), {free} of {len(self.devices) * self.share} free; "
                       + self.rivals.place(tickets, mine, lambda t: self._is_me(t, owner), policy, users, projects))
                break
            chosen = sorted(i for _, i in candidates[:count])
            self._record(owner, chosen, None, project, time.time())
            # every claim written before ours is seen now; one written after sees ours
            records, _, ledgers = self._read()
            after = [r for r in records if not self._is_me(r, owner)]
            crowded = self._used(after)
            if all(crowded.get(i, 0) < self.share for i in chosen) and not hold(mine, policy,
                                                                                 *usage(after, ledgers, policy)):
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

    def contenders(self) -> tuple[list[Waiting], dict[str, Usage], int]:
        """The host's waiting jobs in the policy's order (quota-held ones left out), each user's
        use, and the device slots free now: what this service weighs its preemptible jobs against."""
        records, tickets, ledgers = self._read()
        waiting, users = contenders(tickets, records, ledgers, self.admin.read())
        return waiting, users, sum(max(0, self.share - n) for n in self._used(records).values())

    def host(self, admin: bool) -> dict[str, Any]:
        """The whole host (poolshare.host_view): other users' job ids only for an admin."""
        records, tickets, ledgers = self._read()
        return host_view(self.devices, records, tickets, ledgers, self.admin.read(),
                         lambda entry: admin or (entry["_uid"] == self.uid and entry["_folder"] == self.own))





