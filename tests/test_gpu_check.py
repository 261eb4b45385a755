"""scripts/gpu-check (#26, docs/gpu-check.md), as CI runs it: the wheels fetched (--prepare,
which needs the package index), then the check from them alone. On a machine without an NVIDIA
GPU it installs the package from the wheels into a fresh venv, starts a server, finds /backends
reporting no GPU as NVML says, runs what needs no GPU, and exits 1 saying "no NVIDIA GPU: ...";
on a machine with one, every check must pass."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check"


def nvidia_gpus() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()


def rows(output: str) -> dict[str, str]:
    """The final table: check -> result."""
    table = output[output.rindex("\ncheck "):]
    found = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"(.+?)\s{2,}(ok|FAIL|not run)\s{2,}", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gpu_check_installs_from_the_wheels_and_says_what_it_could_check():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    prepared = subprocess.run(["bash", str(SCRIPT), "--prepare"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=400)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    size = re.search(r"\.cache/gpu-wheels holds (\d+) wheels, (\d+) MiB", prepared.stdout)
    assert size and int(size.group(2)) < 60, prepared.stdout

    checked = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=560)
    output = checked.stdout + checked.stderr
    table = rows(checked.stdout)
    for check in ("install from the wheels", "server starts", "job kernels offered", "a job (local, no GPU)",
                  "a notebook job (no GPU)", "a job kernel (no GPU)"):
        assert table.get(check) == "ok", output[-6000:]
    assert "FAIL" not in table.values(), output[-6000:]
    if nvidia_gpus():
        assert checked.returncode == 0, output[-6000:]
        assert table.get("1. /backends lists the GPU(s)") == "ok", output[-6000:]
        return
    assert checked.returncode == 1, output[-6000:]
    assert table.get("1. /backends: no GPU, as NVML says") == "ok", output[-6000:]
    assert re.search(r"^no NVIDIA GPU: \S", checked.stdout, re.M), output[-6000:]
    assert [r for r, result in table.items() if result == "not run"] == [
        "2. one-GPU job, loss, telemetry", "3. second job waits, then runs",
        "4. notebook job and GPU kernel run torch", "5. the pool holds no record"], output[-6000:]
