"""The `slurm` backend: the same job spec as a Slurm batch job, on one node or several.

The job's folder (workspace copy, stdout/stderr files, artifacts) lives in a shared folder
every node sees; Slurm writes the two output files, which are tailed into the job's log as
for local jobs. Status comes from `scontrol` (and `sacct` for jobs Slurm has forgotten);
the Slurm job id kept in history lets a restarted server find the job again.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from traitlets import Float, Int, List, Unicode

from ..domain.status import FailureReason
from ..domain.spec import JobSpec
from ..domain.errors import SpecError
from ..domain.replies import Capabilities
from ..storage.files import write_private
from .notebooks import runner_source
from .base import Availability, Backend, BackendError, Dependency, Execution, JobContext, Outcome, Usage
from .tail import FileTailExecution

ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
         "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
_FAILURES = {
    "TIMEOUT": (FailureReason.TIMEOUT, "Slurm stopped the job at its time limit"),
    "OUT_OF_MEMORY": (FailureReason.OOM, "the job ran out of memory (raise resources.memory)"),
    "NODE_FAIL": (FailureReason.BACKEND_ERROR, "a node of the job failed"),
    "BOOT_FAIL": (FailureReason.BACKEND_ERROR, "a node of the job failed to boot"),
    "PREEMPTED": (FailureReason.BACKEND_ERROR, "Slurm preempted the job"),
    "DEADLINE": (FailureReason.BACKEND_ERROR, "the job missed its Slurm deadline"),
    "CANCELLED": (FailureReason.BACKEND_ERROR, "the job was cancelled in Slurm"),
}
#: states of a job whose command has not run (yet, or ever)
_NOT_RUN = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "UNREACHABLE", "GONE", "CANCELLED"}
# each node runs one task; the launcher variables torch.distributed and friends expect
_LAUNCH = ('export RANK="$SLURM_PROCID" NODE_RANK="$SLURM_NODEID" LOCAL_RANK="$SLURM_LOCALID"; '
           'exec "$@"')


def _dependency(depends: list[Dependency]) -> list[str]:
    """sbatch's options for a job the cluster starts once others end: `afterok` for what must
    succeed, `afterany` for what only has to end; one that can never run is dropped at once."""
    ok = [str(d.state["slurm_job_id"]) for d in depends if not d.any_end]
    any_ = [str(d.state["slurm_job_id"]) for d in depends if d.any_end]
    if not depends:
        return []
    parts = [f"afterok:{':'.join(ok)}"] * bool(ok) + [f"afterany:{':'.join(any_)}"] * bool(any_)
    return ["--dependency=" + ",".join(parts), "--kill-on-invalid-dep=yes"]


def _fields(line: str) -> dict[str, str]:
    """`scontrol show job -o` prints Key=Value pairs on one line."""
    out = {}
    for part in line.split():
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


def _exit_code(value: str) -> Optional[int]:
    """Slurm's `code:signal` as one exit code (128+N for signal N, as a shell reports it)."""
    try:
        code, _, sig = value.partition(":")
        return 128 + int(sig) if int(sig or 0) else int(code)
    except ValueError:
        return None


def _clock(text: str) -> float:
    """Slurm's [D-]HH:MM:SS[.mmm] or MM:SS.mmm as seconds."""
    days, _, rest = text.strip().rpartition("-")
    seconds = 0.0
    for part in rest.split(":"):
        try:
            seconds = seconds * 60 + float(part)
        except ValueError:
            return 0.0
    return seconds + (int(days) * 86400 if days.isdigit() else 0)


def _size(text: str) -> float:
    """Slurm's 1234K / 12M / 1.5G as bytes."""
    text = text.strip()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:].upper())
    try:
        return float(text[:-1]) * scale if scale else float(text or 0)
    except ValueError:
        return 0.0


class _ClusterView:
    """What Slurm says about all of a backend's jobs, asked once per interval for all of them,
    whatever their number (sites forbid a call per job): each execution reads from here. The
    lock guards the tables only, never a call to Slurm (the event loop takes it too)."""

    def __init__(self, backend: SlurmBackend):
        self.backend = backend
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._states: dict[str, dict[str, str]] = {}
        self._usage: dict[str, Usage] = {}
        self._asked = self._sampled = -math.inf
        self._turn = 0
        self._asking = threading.Lock()  # one round at a time; others read the last one meanwhile

    def watch(self, slurm_id: str) -> None:
        with self._lock:
            self._ids.add(slurm_id)

    def forget(self, slurm_id: str) -> None:
        with self._lock:
            self._ids.discard(slurm_id)
            self._states.pop(slurm_id, None)
            self._usage.pop(slurm_id, None)

    def state(self, slurm_id: str, soon: bool = False) -> Optional[dict[str, str]]:
        """The job's state as of the last round (a new round if one is due, or `soon` after a
        release); blocking: called from the executions' threads."""
        due = self.backend.poll_interval if not soon else min(self.backend.poll_interval, 0.25)
        if time.monotonic() - self._asked >= due and self._asking.acquire(blocking=False):
            try:
                with self._lock:
                    ids = sorted(self._ids)
                self._asked = time.monotonic()
                found = self.backend.job_states(ids)
                with self._lock:
                    self._states.update({i: v for i, v in found.items() if i in self._ids})
            finally:
                self._asking.release()
        with self._lock:
            return self._states.get(slurm_id)

    def usage(self, slurm_id: str) -> Optional[Usage]:
        """The job's steps' figures as last sampled. `sstat` costs the controller about three
        calls per job, so each round asks about `sstat_jobs` running jobs only, taking turns."""
        if time.monotonic() - self._sampled >= max(self.backend.poll_interval, 2.0) and \
                self._asking.acquire(blocking=False):
            try:
                self._sampled = time.monotonic()
                with self._lock:
                    running = sorted(i for i in self._ids if self._states.get(i, {}).get("JobState") == "RUNNING")
                if running:
                    start = self._turn % len(running)
                    turn = (running + running)[start:start + min(self.backend.sstat_jobs, len(running))]
                    self._turn += len(turn)
                    sampled = self.backend.job_usage(turn)
                    with self._lock:
                        self._usage.update(sampled)
            finally:
                self._asking.release()
        with self._lock:
            return self._usage.get(slurm_id)


class SlurmExecution(FileTailExecution):
    """A Slurm job followed through its output files and `scontrol`."""

    def __init__(self, backend: SlurmBackend, ctx: JobContext, slurm_id: str):
        super().__init__(ctx, {"slurm_job_id": slurm_id})
        self.backend = backend
        self.slurm_id = slurm_id
        backend.cluster.watch(slurm_id)
        self._checked = -math.inf
        self._state: dict[str, str] = {"JobState": "PENDING"}
        self._unreachable_since: Optional[float] = None
        self._node: Optional[str] = None  # the address of the node it runs on
        self._soon = False  # released: ask Slurm again without waiting a whole interval
        self._ran: asyncio.Future[None] = self._loop.create_future()

    def _sources(self) -> list[tuple[str, int, Callable[[bytes], None]]]:
        """stdout and stderr as Slurm writes them: two files (their relative order is unknown)."""
        sizes = self.unseen()
        return [(s, sizes[s], lambda data, s=s: self._output(s, data)) for s in ("stdout", "stderr")]

    def _output(self, stream: str, data: bytes) -> None:
        self._mark_ran()  # output: it runs, whatever the last poll of Slurm said
        self.ctx.log.append(stream, data)

    def _mark_ran(self) -> None:
        if not self._ran.done():
            self._loop.call_soon_threadsafe(lambda: self._ran.done() or self._ran.set_result(None))

    async def release(self) -> None:
        # a job that is not held (a reattached one, mostly) makes scontrol complain: harmless
        await asyncio.to_thread(self.backend.run, "scontrol", "release", self.slurm_id, timeout=10)
        self._soon = True  # look again soon
        self.poke()

    async def running(self) -> bool:
        await asyncio.wait([self._ran, self._done], return_when=asyncio.FIRST_COMPLETED)
        return self._ran.done()

    async def address(self, port: int) -> Optional[tuple[str, int]]:
        """The address of the node running its batch script (the node must be reachable from
        the Jupyter host), asked of Slurm once."""
        if self.done() or self._state.get("JobState") != "RUNNING" or not self._state.get("BatchHost"):
            return None
        if self._node is None:
            node = self._state["BatchHost"]
            shown = await asyncio.to_thread(self.backend.run, "scontrol", "show", "node", "-o", node, timeout=10)
            self._node = _fields(shown.stdout).get("NodeAddr") or node if shown.returncode == 0 else node
        return self._node, port

    def waiting(self) -> Optional[str]:
        if self._ran.done() or self._state.get("JobState") != "PENDING":
            return None
        reason = self._state.get("Reason")
        return f"Slurm: {reason if reason and reason != 'None' else 'pending'}"

    def _alive(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= min(self.backend.poll_interval, 0.05):  # the view asks Slurm when due
            self._checked = now
            self._state = self.backend.cluster.state(self.slurm_id, self._soon) or self._state
            self._soon = False
        state = self._state.get("JobState", "")
        if state not in _NOT_RUN:
            self._mark_ran()
        if state == "UNREACHABLE":
            self._unreachable_since = self._unreachable_since or now
            return now - self._unreachable_since < self.backend.ctld_wait
        self._unreachable_since = None
        return state in ALIVE

    def _outcome(self) -> Outcome:
        state = self._state.get("JobState", "")
        code = _exit_code(self._state.get("ExitCode", ""))
        if state == "COMPLETED" or state == "FAILED":
            return Outcome(code)
        if state == "UNREACHABLE":
            return Outcome(None, FailureReason.BACKEND_ERROR,
                           f"slurmctld did not answer for {self.backend.ctld_wait:g} s")
        if state == "GONE":
            return Outcome(None, FailureReason.LOST, f"Slurm no longer knows job {self.slurm_id}")
        if state == "CANCELLED" and self._state.get("Reason") == "DependencyNeverSatisfied":
            return Outcome(None, skipped=True, message="skipped: a job it needs did not succeed "
                           f"(Slurm job {self.slurm_id}: DependencyNeverSatisfied)")
        reason, message = _FAILURES.get(state, (FailureReason.BACKEND_ERROR, f"Slurm ended the job as {state}"))
        return Outcome(code, reason, f"{message} (Slurm job {self.slurm_id}, {state})")

    def _on_error(self) -> None:
        self.backend.cancel(self.slurm_id, "KILL")

    def usage(self) -> Usage:
        """What `sstat` reports for the job's steps: their CPU time and peak resident memory."""
        if not self._ran.done():
            return Usage()
        return self.backend.cluster.usage(self.slurm_id) or Usage()

    def _ended(self) -> None:
        self.backend.cluster.forget(self.slurm_id)

    def terminate(self) -> None:
        self.backend.cancel(self.slurm_id, "TERM")

    def kill(self) -> None:
        self.backend.cancel(self.slurm_id, "KILL")


class SlurmBackend(Backend):
    """Batch jobs on a Slurm cluster."""

    name = "slurm"
    description = "a batch job on a Slurm cluster"
    host_gpus = False  # Slurm allocates the cluster's GPUs itself

    bin_dir = Unicode("", help="Folder of Slurm's client tools (sbatch, scontrol, ...); empty: PATH.").tag(
        config=True
    )
    slurm_conf = Unicode("", help="SLURM_CONF for the client tools; empty: their default.").tag(config=True)
    shared_dir = Unicode(
        "", help="A folder every node sees, for the jobs' folders (workspace copy, output, artifacts). "
        "Empty: the service's data folder, which must then be shared."
    ).tag(config=True)
    partition = Unicode("", help="Default partition.").tag(config=True)
    account = Unicode("", help="Default account.").tag(config=True)
    qos = Unicode("", help="Default QoS.").tag(config=True)
    sbatch_args = List(Unicode(), help="Extra sbatch arguments for every job.").tag(config=True)
    container_template = Unicode(
        "", help="How a job with an image runs on a node; the command follows it. Placeholders: {image}, "
        "{workspace}, {artifacts}, {storage}, {metrics}, {env_file}. E.g. 'apptainer exec --nv --bind "
        "{workspace}:/workspace,{artifacts}:/artifacts,{storage}:/storage,{metrics}:/metrics --pwd /workspace "
        "docker://{image}'. Inside, jobs find their folders at /workspace, /artifacts, /storage (and /metrics "
        "when the template binds it).",
    ).tag(config=True)
    master_port = Unicode("29500", help="MASTER_PORT for multi-node jobs.").tag(config=True)
    poll_interval = Float(1.0, help="Seconds between asking Slurm about the server's jobs (one squeue for all "
                          "of them, two controller calls).").tag(config=True)
    sstat_jobs = Int(1, help="Running jobs whose CPU and memory are asked of sstat per telemetry round (each "
                     "costs the controller about three calls); the jobs take turns.").tag(config=True)
    ctld_wait = Float(600.0, help="Seconds a job waits for an unreachable slurmctld before it fails.").tag(config=True)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.cluster = _ClusterView(self)

    # -- running the client tools -------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        # sbatch hands its environment to the job: never the server's credentials
        env = self.host_environment()
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    def _tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name) if self.bin_dir else (shutil.which(name) or name)

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """One client command (blocking: call from a thread)."""
        try:
            return subprocess.run([self._tool(args[0]), *args[1:]], env=self._env(), capture_output=True,
                                  text=True, timeout=timeout)
        except FileNotFoundError:
            return subprocess.CompletedProcess(args, 127, "", f"{args[0]} not found: Slurm's client tools are missing")
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", f"{args[0]} did not answer in {timeout:g} s")

    def job_states(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """Slurm's view of these jobs in one `squeue` (a job that just ended is asked about once
        more, for its exit code; those it no longer lists are looked up in the accounting or the
        job completion log): JobState, Reason, BatchHost, ExitCode; UNREACHABLE (controller
        down) or GONE (forgotten)."""
        if not ids:
            return {}
        shown = self.run("squeue", "--states=all", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r|%B", timeout=10)
        if shown.returncode != 0 and "Invalid job id" not in shown.stderr:
            return {key: {"JobState": "UNREACHABLE"} for key in ids}
        out: dict[str, dict[str, str]] = {}
        for line in shown.stdout.splitlines():
            job, state, reason, host = (line.split("|") + ["", "", "", ""])[:4]
            if job in ids and state:
                out[job] = {"JobState": state.split()[0], "Reason": reason, "BatchHost": host}
        for job in [i for i, state in out.items() if state["JobState"] not in ALIVE]:
            shown = self.run("scontrol", "show", "job", "-o", job, timeout=10)  # once, as it ends: its exit code
            if shown.returncode == 0 and "JobState=" in shown.stdout:
                out[job] = _fields(shown.stdout)
        missing = [i for i in ids if i not in out]
        for source in ("-X", "-c"):  # forgotten by the controller: accounting, then the job completion log
            if not missing:
                break
            done = self.run("sacct", source, "-n", "-P", "-j", ",".join(missing), "-o", "JobID,State,ExitCode",
                            timeout=10)
            for line in done.stdout.splitlines():
                job, state, code = (line.split("|") + ["", "", ""])[:3]
                if job in missing and state:
                    out[job] = {"JobState": state.split()[0], "ExitCode": code}
            missing = [i for i in missing if i not in out]
        out.update({job: {"JobState": "GONE"} for job in missing})
        return out

    def job_usage(self, ids: list[str]) -> dict[str, Usage]:
        """What `sstat` reports for these jobs' steps, in one call: CPU time and peak memory."""
        if not ids:
            return {}
        shown = self.run("sstat", "-a", "-n", "-P", "-j", ",".join(ids), "--format=JobID,AveCPU,NTasks,MaxRSS",
                         timeout=10)
        if shown.returncode != 0 and not shown.stdout.strip():
            why = (shown.stderr.strip().splitlines() or ["no figures"])[-1]
            if "no steps running" in why.lower():
                return {}  # between the batch step starting and its first task: ask again
            note = f"Slurm's sstat gave no figures ({why}); the cluster may gather no job accounting"
            return {i: Usage(note=note) for i in ids}
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        for line in shown.stdout.splitlines():
            step, ave, tasks, peak = (line.split("|") + ["", "", "", ""])[:4]
            job = step.split(".")[0]
            cpu[job] = cpu.get(job, 0.0) + _clock(ave) * (int(tasks) if tasks.isdigit() else 1)
            rss[job] = rss.get(job, 0.0) + _size(peak)
        return {job: Usage(cpu[job], int(rss[job])) for job in cpu}

    def cancel(self, slurm_id: str, signal: str) -> None:
        """TERM: scancel (Slurm sends SIGTERM, then SIGKILL after its KillWait). KILL: also
        force whatever is left, and a job still pending never starts."""
        self.run("scancel", slurm_id, timeout=10)
        if signal == "KILL":
            self.run("scancel", "--signal=KILL", "--full", slurm_id, timeout=10)

    # -- Backend ----------------------------------------------------------------------------
    async def availability(self) -> Availability:
        ping = await asyncio.to_thread(self.run, "scontrol", "ping", timeout=10)
        if ping.returncode == 0 and "UP" in ping.stdout:
            return Availability(True, details={"controller": ping.stdout.strip().splitlines()[0]})
        why = (ping.stdout + ping.stderr).strip().splitlines()
        return Availability(False, f"slurmctld is not reachable: {why[-1] if why else 'no answer'}")

    def capabilities(self) -> Capabilities:
        return Capabilities(containers=bool(self.container_template), gpus=True, cpus=True, memory=True, nodes=True,
                            dependencies=True, environments=True)

    def jobs_root(self) -> Optional[Path]:
        return Path(self.shared_dir) / "jobs" if self.shared_dir else None

    def _directives(self, spec: JobSpec) -> list[str]:
        res = spec.resources
        args = [f"--nodes={res.nodes}", "--ntasks-per-node=1"]
        if res.cpus:
            args.append(f"--cpus-per-task={math.ceil(res.cpus)}")
        if res.memory_bytes:
            args.append(f"--mem={math.ceil(res.memory_bytes / (1 << 20))}M")
        if res.gpus:
            args.append(f"--gres=gpu:{res.gpus}")
        if spec.timeout:
            args.append(f"--time={max(1, math.ceil(spec.timeout / 60))}")
        opts = spec.slurm
        for flag, admin, own in (("partition", self.partition, opts and opts.partition),
                                 ("account", self.account, opts and opts.account),
                                 ("qos", self.qos, opts and opts.qos)):
            if own or admin:
                args.append(f"--{flag}={own or admin}")
        return [*args, *self.sbatch_args, *(opts.sbatch_args if opts else [])]

    async def validate(self, spec: JobSpec) -> None:
        if spec.image and not self.container_template:
            raise SpecError.one("image", "this Slurm cluster runs no containers "
                                "(the admin has set no c.SlurmBackend.container_template)")
        test = await asyncio.to_thread(self.run, "sbatch", "--test-only", *self._directives(spec), "--wrap=true")
        if test.returncode != 0:
            message = test.stderr.strip().replace("sbatch: error: ", "") or "sbatch refused the job"
            lowered = message.lower()
            if "partition" in lowered:
                field = "slurm.partition"
            elif "node count" in lowered or (spec.resources.nodes > 1 and not spec.resources.gpus):
                field = "resources.nodes"
            elif spec.resources.gpus and ("gres" in lowered or "node configuration" in lowered):
                field = "resources.gpus"
            else:
                field = "slurm"
            raise SpecError.one(field, f"Slurm refuses this job: {message}")

    def _script(self, ctx: JobContext) -> str:
        spec = ctx.job.spec
        argv = spec.argv(self.python(spec), runner_source())
        if spec.image:
            env_file = ctx.dir / "container.env"
            # the metrics folder is mounted where the template says so ({metrics}), else seen as on the host
            metrics = "/metrics" if "{metrics}" in self.container_template else None
            env = ctx.env(artifacts="/artifacts", storage="/storage", metrics=metrics)
            write_private(env_file, "".join(f"{k}={v}\n" for k, v in env.items() if "\n" not in v))
            quoted = {"image": spec.image, "workspace": ctx.workspace, "artifacts": ctx.artifacts,
                      "storage": ctx.storage, "metrics": ctx.metrics, "env_file": env_file}
            prefix = self.container_template.format(**{k: shlex.quote(str(v)) for k, v in quoted.items()})
            argv = [*shlex.split(prefix), *argv]
        else:
            env = ctx.env()
        env.pop("CUDA_VISIBLE_DEVICES", None)  # Slurm sets it for the GPUs it gives
        lines = ["#!/bin/bash", f"#SBATCH --job-name=jupyter-job-{ctx.job.id}",
                 f"#SBATCH --output={ctx.dir / 'stdout'}", f"#SBATCH --error={ctx.dir / 'stderr'}",
                 f"#SBATCH --chdir={ctx.workspace}", "#SBATCH --open-mode=append"]
        lines += [f"#SBATCH {shlex.quote(arg)}" for arg in self._directives(spec) + _dependency(ctx.depends)]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        lines += [
            'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
            f'export MASTER_PORT="${{MASTER_PORT:-{self.master_port}}}" WORLD_SIZE="$SLURM_NNODES"',
            '[ -n "${SLURM_CPUS_PER_TASK:-}" ] && export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"',
            "srun --quiet --kill-on-bad-exit=1 bash -c " + shlex.quote(_LAUNCH) + " job " + shlex.join(argv),
        ]
        return "\n".join(lines) + "\n"

    async def start(self, ctx: JobContext) -> Execution:
        def submit() -> str:
            script = ctx.dir / "job.sbatch"
            for stale in ("stdout", "stderr"):  # Slurm appends to them
                (ctx.dir / stale).unlink(missing_ok=True)
            if script.exists():  # a start a server restart interrupted: its held job must not linger
                self.run("scancel", f"--name=jupyter-job-{ctx.job.id}", timeout=10)
            write_private(script, self._script(ctx))  # it exports the job's environment
            done = self.run("sbatch", "--parsable", "--hold", str(script))
            if done.returncode != 0:
                raise BackendError("Slurm refused the job: " + (done.stderr.strip().replace("sbatch: error: ", "")
                                                                or f"sbatch exited with {done.returncode}"))
            return done.stdout.strip().split(";")[0]

        slurm_id = await asyncio.to_thread(submit)
        return SlurmExecution(self, ctx, slurm_id).begin()

    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        return SlurmExecution(self, ctx, str(state["slurm_job_id"])).begin()
