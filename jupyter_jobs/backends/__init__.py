"""Backends run jobs; the service picks one per job by name."""

from .base import Availability, Backend, BackendError, Execution, JobContext, Outcome

#: Backends the service knows out of the box, by name; `c.JobsApp.backends` adds or replaces.
BUILTIN_BACKENDS = {
    "local": "jupyter_jobs.backends.local.LocalBackend",
    "docker": "jupyter_jobs.backends.docker.DockerBackend",
    "podman": "jupyter_jobs.backends.podman.PodmanBackend",
    "slurm": "jupyter_jobs.backends.slurm.SlurmBackend",
}

__all__ = ["BUILTIN_BACKENDS", "Availability", "Backend", "BackendError", "Execution", "JobContext", "Outcome"]
