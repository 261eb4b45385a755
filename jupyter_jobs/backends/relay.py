"""The supervisor of a local job: `python -I -S relay.py`, its stdin a pipe from the server.

Standalone (standard library only, no site packages) and in a session of its own, so it
outlives a server restart. The server starts one ahead of need (its start-up is then off the
job's path) and hands it a job as one JSON line: {"argv", "cwd", "env", "dir", "reap"}. It
- waits at a gate: a second line "go" once the service has recorded the launch; EOF (the
  server died first) writes "held" to DIR/exit_code and never runs ARGV (before any job is
  handed over, EOF just ends it);
- runs ARGV (in CWD, with exactly ENV) in a process group of its own with stdout and stderr
  on two pipes, and appends what arrives, in arrival order, to DIR/output as frames (8-byte header: stream 1 or 2,
  three zero bytes, big-endian length; the format of Docker's attach stream);
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
import sys

_PR_SET_CHILD_SUBREAPER = 36
_HEADER = struct.Struct(">BxxxL")


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


def _pump(out_fd: int, pipes: dict, pid: int) -> int:
    """Copy both pipes to the output until ARGV has exited and the pipes are drained."""
    status = None
    try:  # readable once ARGV exits: no polling for its end
        exited = [os.pidfd_open(pid)]
    except (AttributeError, OSError):
        exited = []
    while pipes:
        watch = list(pipes) + (exited if status is None else [])
        ready, _, _ = select.select(watch, [], [], (None if exited else 0.05) if status is None else 0)
        for fd in ready:
            if fd in exited:
                continue
            data = os.read(fd, 1 << 16)
            if data:
                os.write(out_fd, _HEADER.pack(pipes[fd], len(data)) + data)
            else:
                del pipes[fd]
        if status is None:
            done, status_ = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_
        elif not ready:
            break  # ARGV is over and nothing is pending: a leftover holding a pipe must not keep us
    if status is None:
        status = os.waitpid(pid, 0)[1]
    return status


def main() -> None:
    line = sys.stdin.readline()
    if not line:
        return  # a spare that was never used: the server went away
    job = json.loads(line)
    folder, argv, reap = job["dir"], job["argv"], job["reap"]
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
    null = os.open(os.devnull, os.O_RDONLY)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # ARGV: its own group, stdin from /dev/null
        os.setpgid(0, 0)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_r, out_w, err_r, err_w):
            os.close(fd)
        try:
            os.chdir(job["cwd"])
            os.execvpe(argv[0], argv, job["env"])
        except OSError as exc:
            os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    signal.signal(signal.SIGTERM, lambda *_: _signal_group(pid, signal.SIGTERM))
    signal.signal(signal.SIGUSR1, lambda *_: _signal_group(pid, signal.SIGKILL))
    out_fd = os.open(os.path.join(folder, "output"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    status = _pump(out_fd, {out_r: 1, err_r: 2}, pid)
    _signal_group(pid, signal.SIGKILL)
    if reap:
        _reap_all()
    code = os.waitstatus_to_exitcode(status)
    with open(exit_file, "w") as fh:
        fh.write(f"{128 - code if code < 0 else code}\n")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    main()
