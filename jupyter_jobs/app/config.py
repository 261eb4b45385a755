"""The service's settings (`c.JobsApp...`), traitlets only; `compose.build` makes the
platform from them. Neutral ground: the server extension and the kernel's embedded service
both build theirs through `app`, so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, Union, default, validate
from traitlets.config import LoggingConfigurable

from ..domain.policy import Policy, PolicyError
from ..jobs.gpupool import DEFAULT_FOLDER

#: where a kernel started by the server finds the service (the server puts these in its env)
ENV_URL = "JUPYTER_JOBS_URL"
ENV_TOKEN = "JUPYTER_JOBS_TOKEN"
ENV_ROOT = "JUPYTER_JOBS_ROOT"


class JobsConfig(LoggingConfigurable):
    """The settings of the job service; `JobsApp` (the server extension) inherits them."""

    data_dir = Unicode(
        help="Where job history (SQLite), logs, artifacts and workspace snapshots are kept. "
        "Default: <jupyter data dir>/jupyter_jobs."
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_jobs")

    storage_dir = Unicode(
        "", help="The persistent storage folder jobs share ($JOB_STORAGE_DIR). Default: <data_dir>/storage."
    ).tag(config=True)
    default_backend = Unicode("local", help="Backend for jobs whose spec names none.").tag(config=True)
    backends = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Extra or replacement backends: name -> import path of a Backend subclass, "
        "e.g. {'local': 'jupyter_jobs.backends.local.LocalBackend'}.",
    ).tag(config=True)
    disabled_backends = List(Unicode(), help="Built-in backends to leave out.").tag(config=True)
    max_snapshot_size = Int(1 << 30, help="Largest workspace snapshot, in bytes.").tag(config=True)
    max_running = Int(0, help="Jobs running at once per backend when the backend sets no limit; 0: none.").tag(
        config=True
    )
    kill_grace = Float(10.0, help="Seconds between asking a job to stop (SIGTERM) and killing it.").tag(config=True)
    gpus = Union(
        [Int(), List(Dict())],
        default_value=-1,
        help="GPU inventory: -1 discovers NVIDIA GPUs with NVML; a number N declares devices 0..N-1; "
        "a list of {'index': i, 'name': ...} declares them one by one.",
    ).tag(config=True)
    gpu_share = Int(1, help="How many jobs may use one GPU at once.").tag(config=True)
    gpu_pool_dir = Unicode(
        DEFAULT_FOLDER, help="The host-wide folder every jupyter_jobs service on this machine allocates GPUs "
        "from (one Jupyter server per JupyterHub user, the CLI's embedded service), so two jobs never share a "
        "device; sticky and writable by every user, as /tmp (each service writes only in a folder of its own "
        "there, and believes a record only for the user owning it and naming that user's live process). "
        "Empty: this server allocates on its own."
    ).tag(config=True)
    gpus_per_user = Int(0, help="Most GPUs one user's jobs hold at once on this host (with the host-wide "
                        "pool); 0: no limit.").tag(config=True)
    gpu_policy = Dict(
        help="Who gets the next GPU, as the admin's policy.json in the pool folder says it (priority caps, "
        "quotas, the fair share's half-life, idle GPUs given back; see the README): applied where the pool "
        "folder has no admin's file, and by a server without a host pool. gpus_per_user is its default 'gpus'."
    ).tag(config=True)

    @validate("gpu_policy")
    def _check_gpu_policy(self, proposal: dict) -> dict:
        try:
            Policy.from_json(proposal["value"])
        except PolicyError as exc:
            raise TraitError(f"JobsApp.gpu_policy: {exc}") from None
        return proposal["value"]
    host_admins = List(
        Unicode(), default_value=["root"], help="Unix users whose Jupyter server shows the whole host's GPUs "
        "with every job's id (GET /jupyter-jobs/host, the Host view); any other user's server shows other users' "
        "jobs by user and project only. No server ever shows another user's commands, names or env (the pool "
        "holds none). Default: root only."
    ).tag(config=True)
    host_metrics_interval = Float(
        10.0, help="Seconds between reads of the history's counts and the host's GPUs (holders, utilization, "
        "queue) for the server's /metrics. 0: not read (the job outcomes and wait times are still counted)."
    ).tag(config=True)
    endpoint_url = Unicode(
        "", help="Give each job endpoint its own origin: a URL template with {key}, such as "
        "'https://{key}.jobs.example.com/' (a wildcard DNS name and certificate routed to this server) or "
        "'http://{key}.localhost:8888/' (browsers resolve *.localhost to this machine). A page served by a job "
        "then runs as a full web app (cookies, storage, service workers) on an origin of its own. Empty (the "
        "default): endpoints are served under this server's URL, sandboxed (see the README's security model)."
    ).tag(config=True)

    @validate("endpoint_url")
    def _check_endpoint_url(self, proposal: dict) -> str:
        from urllib.parse import urlsplit

        value = proposal["value"]
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname
                      or not parts.hostname.startswith("{key}.") or value.count("{key}") != 1):
            raise TraitError("JobsApp.endpoint_url must be http(s)://{key}.<host>[:port]/ (the key as the "
                             f"first label of the host), not {value!r}")
        return value

    retention = Dict(
        help="How long finished jobs (with their logs and artifacts) are kept: {'max_age': '30d', 'max_jobs': "
        "10000}; and dataset and model versions nothing holds (no job not yet finished, schedule or named "
        "workflow's default; never the newest of a name): {'versions_max_age': '90d'}. Any key may be left out. "
        "Default: kept until deleted.",
    ).tag(config=True)
    housekeeping_interval = Float(
        3600.0, help="Seconds between applying retention and collecting unused snapshot data (also done at start)."
    ).tag(config=True)
    max_log_size = Int(
        1 << 30, help="Most bytes of output a job's log keeps; past it the oldest output is dropped (with a "
        "note where it was) and the job runs on. 0: no limit."
    ).tag(config=True)

    metrics_interval = Float(
        2.0, help="Seconds between samples of a running job's CPU, memory and GPUs (its telemetry). 0: none."
    ).tag(config=True)
    max_metrics_size = Int(
        1 << 30, help="Most bytes of a job's own metrics file ($JOB_METRICS_FILE) the service reads."
    ).tag(config=True)

    strict_specs = Bool(
        False, help="Refuse (400) a spec asking for what its backend does not apply: an image where it runs "
        "no containers, cpus or memory it does not limit, more than one node, GPUs. Default: the job runs, with "
        "a note saying what was not applied."
    ).tag(config=True)

    webhooks = List(
        Dict(), help="Webhooks: [{'url': 'https://...', 'secret': '...', 'events': ['job.ended', ...]}]. Each gets "
        "a signed JSON POST per event (job.queued, job.started, job.ended, workflow.ended, schedule.fired; "
        "events left out: all of them)."
    ).tag(config=True)
    webhook_attempts = Int(10, help="Attempts per webhook delivery before it is given up.").tag(config=True)
    webhook_backoff = Float(1.0, help="Seconds before a webhook delivery's first retry; doubled each time.").tag(
        config=True)

    instance_types = Dict(
        help="Machine shapes a spec can name as instance_type: {'gpu-small': {'gpus': 1, 'cpus': 8, 'memory': "
        "'32g', 'backend': 'docker', 'image': '...'}}. A type sets gpus, cpus, memory, nodes, backend, image, slurm, "
        "env and timeout; a spec's own fields win."
    ).tag(config=True)

    kernels = Dict(
        help="Job kernels to offer in the launcher and 'Change kernel', by name: {'gpu': {'display_name': "
        "'Python 3 - 1 GPU (docker, pytorch)', 'backend': 'docker', 'image': '...', 'gpus': 1}}; each sets "
        "display_name, backend, image, gpus, instance_type and requirements. Empty: one per backend that "
        "answers (a GPU one where the host has GPUs) and one per instance type. A kernel that cannot work "
        "stops the server at start with the reason."
    ).tag(config=True)

    git_timeout = Float(120.0, help="Seconds any one git command (clone, fetch, archive) may take for a git "
                        "workspace before the submission fails with git's message.").tag(config=True)

    pip_index_url = Unicode(
        "", help="The package index environments install from (empty: uv's default, or the server's pip/uv "
        "configuration; 'none': no index, only pip_find_links)."
    ).tag(config=True)
    pip_find_links = List(Unicode(), help="Folders or URLs of wheels environments may install from.").tag(config=True)
    default_requirements = Unicode(
        "", help="What a spec that names no requirements gets: '' nothing, 'auto' the requirements.txt at its "
        "workspace's top if there is one."
    ).tag(config=True)
