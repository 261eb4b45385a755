"""The supervisor of a local job: `python -I -S relay.py`, its stdin a pipe from the server.

Standalone (standard library only, no site packages) and in a session of its own, so it
outlives a server restart. The server starts one ahead of need (its start-up is then off the
job's path), as a fork of `relay.py --fork-server` (forks.py) where it can, and hands it a job
as one JSON line: {"argv", "cwd", "env", "dir", "reap"}. It
- waits at a gate: a second line "go" once the service has recorded the launch; EOF (the
  server died first) writes "held" to DIR/exit_code and never runs ARGV (before any job is
  handed over, EOF just ends it);
- runs ARGV (in CWD, with exactly ENV) in a process group of its own with stdout and stderr
  on two pipes, and appends what they carry to DIR/output as frames (8-byte header: stream 1
  or 2, three zero bytes, big-endian length; the format of Docker's attach stream), the pipe
  written first first, as a terminal would show it (`_Readiness`);
- with --reap (no cgroup holds the job), is a child subreaper: when ARGV ends, every process
  it left behind (setsid, double fork) is killed, as in a container; SIGTERM is passed on to
  ARGV's group, and SIGUSR1 kills ARGV's group;
- writes ARGV's exit status to DIR/exit_code (128+N for signal N).
"""

import json
import os
import select
import signal
import struct
import subprocess
import sys

_PR_SET_CHILD_SUBREAPER = 36
_HEADER = struct.Struct(">BxxxL")
_CHUNK = 1 << 16
_BURST = 16  # reads of one pipe in a row at most


def _subreaper() -> None:
    import ctypes  # only here: it costs milliseconds at every job's start

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: descendants that left the group are not found


def _children() -> list:
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[1].decode() == me:
                    found.append(int(pid))
        except (OSError, IndexError):
            continue
    return found


def _reap_all() -> None:
    """Kill whatever the job left behind (reparented to us), until nothing is left."""
    while True:
        left = _children()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return


class _Readiness:
    """Which of the watched fds turned readable, in the order they did. Writes microseconds
    apart (tqdm's last bar on stderr, then a print) are both pending by the time the relay
    wakes, and a scan in fd order put stdout first every time (measured: 10 runs of 10).
    epoll keeps its ready list in wake-up order; edge-triggered (each pipe read empty before
    the next wait; level-triggered, a drained pipe keeps its old place in the list) a pipe
    joins it at its first write since it was drained, so the stream written first is copied
    first. Two writes to one stream around a write to the other, all before the relay wakes,
    still come out per stream: no reader of two pipes can tell. Without epoll (not Linux):
    select, in fd order."""

    def __init__(self, fds: list) -> None:
        self._fds = list(fds)
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        if self._epoll is not None:
            for fd in fds:
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)

    def forget(self, fd: int) -> None:
        self._fds.remove(fd)
        if self._epoll is not None:
            self._epoll.unregister(fd)

    def wait(self, timeout: "float | None") -> list:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(-1 if timeout is None else timeout)]
        return select.select(self._fds, [], [], timeout)[0]


def _copy(fd: int, stream: int, out_fd: int) -> "bool | None":
    """Append what the pipe holds to the output, a frame per read, until it is empty (False),
    at EOF (None), or after a burst (True: more may wait; a flood on one stream must not hold
    back the other's output)."""
    for _ in range(_BURST):
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return False
        if not data:
            return None
        os.write(out_fd, _HEADER.pack(stream, len(data)) + data)
    return True


def _pump(out_fd: int, pipes: dict, pid: int) -> int:
    """Copy both pipes to the output, the one written first first, until ARGV has exited and
    the pipes are drained."""
    status = None
    try:  # readable once ARGV exits: no polling for its end
        exited = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exited = None
    for fd in pipes:
        os.set_blocking(fd, False)  # the relay's ends only: ARGV's writes block as they did
    readiness = _Readiness([*pipes, *([] if exited is None else [exited])])
    behind: list = []  # pipes left holding output after a burst: served again without waiting
    idle = None if exited is not None else 0.05  # without a pidfd, look for ARGV's end now and then
    while pipes:
        woke = readiness.wait(0 if behind or status is not None else idle)
        order = list(dict.fromkeys(behind + [fd for fd in woke if fd in pipes]))
        behind = []
        for fd in order:
            more = _copy(fd, pipes[fd], out_fd)
            if more is None:
                del pipes[fd]
                readiness.forget(fd)
            elif more:
                behind.append(fd)
        if status is None:
            done, status_ = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_
                if exited is not None:
                    readiness.forget(exited)
        elif not woke and not behind:
            break  # ARGV is over and nothing is pending: a leftover holding a pipe must not keep us
    if status is None:
        status = os.waitpid(pid, 0)[1]
    return status


def main() -> None:
    line = sys.stdin.readline()
    if not line:
        return  # a spare that was never used: the server went away
    job = json.loads(line)
    folder, reap = job["dir"], job["reap"]
    exit_file = os.path.join(folder, "exit_code")
    log = os.open(os.path.join(folder, "relay.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if sys.stdin.readline().strip() != "go":
        with open(exit_file, "w") as fh:
            fh.write("held\n")
        sys.exit(125)
    if reap:
        _subreaper()
    out_fd = os.open(os.path.join(folder, "output"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    code = _run(job, out_fd)
    if reap:
        _reap_all()
    with open(exit_file, "w") as fh:
        fh.write(f"{128 - code if code < 0 else code}\n")


def _run(job: dict, out_fd: int) -> int:
    """ARGV in a process group of its own, stdin from /dev/null, its output copied; its exit
    code. Started by vfork and exec (subprocess): a fork would copy this process's page tables
    first (~1 ms of each job's start). `restore_signals` gives it SIGPIPE and SIGXFSZ back, which
    Python ignores (`yes | head` then ends quietly, as in a terminal)."""
    argv = job["argv"]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, cwd=job["cwd"],
                                env=job["env"], close_fds=True, restore_signals=True, **group)
    except OSError as exc:  # not found, not executable, no such folder: as a shell says it
        said = f"{argv[0]}: {exc.strerror}\n".encode()
        os.write(out_fd, _HEADER.pack(2, len(said)) + said)
        return 127
    finally:
        os.close(out_w)
        os.close(err_w)
    pid = proc.pid
    signal.signal(signal.SIGTERM, lambda *_: _signal_group(pid, signal.SIGTERM))
    signal.signal(signal.SIGUSR1, lambda *_: _signal_group(pid, signal.SIGKILL))
    status = _pump(out_fd, {out_r: 1, err_r: 2}, pid)
    _signal_group(pid, signal.SIGKILL)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: subprocess must not wait again
    return proc.returncode


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _run_relay(gate: int) -> int:
    """In a child of the fork server: become a relay, its gate on stdin, in a session of its own."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.dup2(gate, 0)
    os.close(gate)
    sys.stdin = open(0, closefd=False)  # fd 0 is the gate now: nothing was read from it yet
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # said in relay.log (stderr is there once the job came)
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stderr.flush()
    return 0


RECORD = struct.Struct(">cii")  # to the server: b"p" pid 0, a relay started; b"x" pid code, a relay ended


def fork_server(sock_fd: int) -> None:
    """--fork-server FD: start relays on request, as forks of this process (its interpreter and
    modules loaded: ~1 ms, where a fresh interpreter takes ~10 on the job's path). A request is
    one byte on the Unix socket FD with the gate's read end attached; the answer is the relay's
    pid, and when a relay ends, its exit code (the server did not start it, so cannot wait for
    it). At EOF (the server went) it ends; the relays run on, each in its own session."""
    import ctypes  # noqa: F401 (loaded here once, not in every relay that makes itself a subreaper)
    import socket

    sock = socket.socket(fileno=sock_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready = select.select([sock, wake_r], [], [])[0]
        if wake_r in ready:
            os.read(wake_r, 512)
            _send_ends(sock)
        if sock in ready:
            try:
                _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            except OSError:
                fds = []
            if not fds:
                return  # EOF: the server went
            pid = os.fork()
            if pid == 0:
                sock.close()
                os.close(wake_r)
                os.close(wake_w)
                os._exit(_run_relay(fds[0]))
            os.close(fds[0])
            sock.sendall(RECORD.pack(b"p", pid, 0))


def _send_ends(sock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        try:
            sock.sendall(RECORD.pack(b"x", pid, os.waitstatus_to_exitcode(status)))
        except OSError:
            pass  # the server went: nobody asks any more


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fork-server"]:
        fork_server(int(sys.argv[2]))
    else:
        main()
