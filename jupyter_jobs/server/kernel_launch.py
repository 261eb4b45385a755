"""The first thing a job kernel runs, wherever its job lands (this host, a container, a Slurm
node): it writes the kernel's connection file where only the kernel reads it, then becomes the
kernel. Handed over as source (`python -c`), so a container needs ipykernel but nothing of
jupyter_jobs; the standard library only, for any Python 3.

Why not the connection file jupyter_client wrote: it is on the Jupyter host, with that host's
ports. The key comes in `JUPYTER_JOBS_KERNEL` (a variable the service never records) and is
dropped from the environment before user code runs; the ports are those the backend gave the
job (`PORT_KERNEL_SHELL`...); the address is where the backend publishes them.

argv: python -c SOURCE KERNEL_ARGV... (with `{connection_file}` where the file's path goes)
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile

PORTS = ("shell", "iopub", "stdin", "control", "hb")


def node_address() -> str:
    """This Slurm node's address as the cluster names it (NodeAddr), else what its name resolves to."""
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    try:
        shown = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True,
                               timeout=10).stdout
        fields = dict(part.split("=", 1) for part in shown.split() if "=" in part)
        node = fields.get("NodeAddr") or node
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return socket.getaddrinfo(node, None, socket.AF_INET)[0][4][0]
    except OSError:
        return "0.0.0.0"


def main(argv: list) -> int:
    info = json.loads(os.environ.pop("JUPYTER_JOBS_KERNEL", "") or "{}")
    if "key" not in info:
        print("jupyter-jobs: no connection key was handed to this kernel job", file=sys.stderr)
        return 2
    if importlib.util.find_spec("ipykernel") is None:
        print(f"jupyter-jobs: this Python ({sys.executable}) has no ipykernel, so it cannot run a kernel: "
              "use an image with ipykernel, or add it to the kernel's requirements", file=sys.stderr)
        return 2
    bind = info.pop("bind", "127.0.0.1")
    info["ip"] = node_address() if bind == "node" else bind
    for name in PORTS:
        info[f"{name}_port"] = int(os.environ.pop(f"PORT_KERNEL_{name.upper()}"))
    name = os.path.basename(info.pop("file", "kernel.json"))  # kernel-<id>.json: the magic's origin
    path = os.path.join(tempfile.mkdtemp(prefix="jupyter-jobs-kernel-"), name)  # 0700, made anew
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        json.dump(info, out)
    args = [arg.replace("{connection_file}", path) for arg in argv]
    os.execvp(args[0], args)  # the kernel is the job's process: its signals and exit are the job's
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
