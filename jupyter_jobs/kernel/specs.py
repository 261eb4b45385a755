"""A job spec from the options every face shares (the magic's `%job`/`%%job` and the `jupyter
jobs` CLI): one table of options, one way to read KEY=VALUE pairs, one way to turn options
into a spec. Bad input raises ValueError; each face words it its own way."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Optional

import yaml

#: (flags, argparse-style settings) of the options that shape a job
SPEC_ARGUMENTS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("-b", "--backend"), {"help": "backend to run on: local, docker, slurm (default: the server's)"}),
    (("-i", "--image"), {"help": "container image (container backends)"}),
    (("-g", "--gpus"), {"type": int, "help": "number of GPUs"}),
    (("--cpus",), {"type": float, "help": "CPUs, e.g. 1.5"}),
    (("-m", "--memory"), {"help": "memory limit, e.g. 16g"}),
    (("-e", "--env"), {"action": "append", "metavar": "KEY=VALUE", "help": "environment variable (repeatable)"}),
    (("-t", "--timeout"), {"help": "maximum run time: seconds, or 30m, 2h"}),
    (("-n", "--name"), {"help": "job name"}),
    (("--project",), {"help": "project (default: the workspace folder's name)"}),
    (("-w", "--workspace"), {"help": "folder to snapshot (default: the current folder)"}),
    (("--git",), {"metavar": "URL[@REF]", "help": "a git repository (at a branch, tag or commit) as the "
                  "workspace instead of a folder"}),
    (("--instance",), {"help": "an instance type the admin named (its resources, backend, image); "
                       "other options override its fields"}),
    (("--expose",), {"action": "append", "metavar": "PORT:NAME[:/HEALTH]", "help": "a port the job serves, "
                     "reached through Jupyter at its endpoint NAME; the job listens on $PORT_<NAME> (repeatable)"}),
    (("--dataset",), {"action": "append", "metavar": "NAME[:VERSION][=MOUNT]", "help": "a dataset version the job "
                      "reads at $JOB_DATASETS_DIR/NAME (containers: /datasets/NAME or MOUNT); default the newest "
                      "(repeatable)"}),
    (("--model",), {"action": "append", "metavar": "NAME[:VERSION][=MOUNT]", "help": "a model version the job reads "
                    "at $JOB_MODELS_DIR/NAME (containers: /models/NAME or MOUNT) (repeatable)"}),
]
SPEC_OPTIONS = tuple(flags[-1].lstrip("-") for flags, _ in SPEC_ARGUMENTS)


def parse_env(pairs: Optional[list[str]]) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def parse_expose(given: Optional[list[str]]) -> list[dict[str, Any]]:
    """`6006:tensorboard` or `8000:api:/healthz` as the spec's `expose` entries."""
    out = []
    for item in given or []:
        port, sep, rest = item.partition(":")
        name, _, health = rest.partition(":")
        if not sep or not port.isdigit() or not name:
            raise ValueError(f"--expose takes PORT:NAME or PORT:NAME:/HEALTH, not {item!r}")
        out.append({"port": int(port), "name": name, **({"health": health} if health else {})})
    return out


def parse_replicas(given: str) -> dict[str, int]:
    """`2` (two, always) or `1:4` (between one and four, autoscaled) as a deployment's replicas."""
    low, sep, high = given.partition(":")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise ValueError(f"--replicas takes MIN or MIN:MAX, not {given!r}")
    return {"min": int(low), **({"max": int(high)} if sep else {})}


def deployment_text(d: dict[str, Any], base_url: str) -> str:
    """A deployment in a few lines: its state, traffic, addresses and replicas."""
    stats, ready = d["stats"], sum(1 for r in d["running"] if r["ready"])
    latency = f" · p50 {stats['p50_ms']:g} ms, p99 {stats['p99_ms']:g} ms" if stats["p50_ms"] is not None else ""
    lines = [f"{d['name']} v{d['version']}: {d['status']}" + (f" ({d['message']})" if d["message"] else ""),
             f"  {ready} of {d['wanted']} ready (replicas {d['replicas']['min']}-{d['replicas']['max']}) · "
             f"{stats['requests_per_second']:g} req/s{latency} · {stats['errors']} errors"]
    lines += [f"  {e['name']}: {e['url'] or base_url.rstrip('/') + '/' + e['path']}" for e in d["endpoints"]]
    lines += [f"  replica {r['job_id']} v{r['version']} {r['status']}{' ready' if r['ready'] else ''}"
              for r in d["running"]]
    return "\n".join(lines)


def parse_datasets(given: Optional[list[str]], option: str = "--dataset") -> list[dict[str, Any]]:
    """`mnist`, `mnist:3` or `mnist:3=/data/mnist` as the spec's `datasets` entries."""
    out = []
    for item in given or []:
        ref, _, mount = item.partition("=")
        name, sep, version = ref.partition(":")
        if not name or (sep and not version.isdigit()):
            raise ValueError(f"{option} takes NAME, NAME:VERSION or NAME:VERSION=MOUNT, not {item!r}")
        out.append({"name": name, **({"version": int(version)} if sep else {}), **({"mount": mount} if mount else {})})
    return out


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs as a notebook's parameters, each value read as YAML (as papermill's -y)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"a parameter is NAME=VALUE with NAME an identifier, not {pair!r}")
        try:
            out[name] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[name] = value
    return out


def git_ref(given: str) -> tuple[str, str]:
    """`URL@REF` as (URL, REF); an `@` before a host (`git@host:repo`) is part of the URL."""
    url, sep, ref = given.rpartition("@")
    return (url, ref) if sep and url and ":" not in ref else (given, "")


def workspace_of(root: Path, given: Optional[str]) -> str:
    """The workspace (relative to the service's root) of a folder given relative to here."""
    folder = (Path.cwd() / given).resolve() if given else Path.cwd().resolve()
    try:
        relative = folder.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"the workspace {folder} is outside the folder the service serves ({root.resolve()}); "
                         "pass --workspace with a folder inside it") from None
    return "" if relative == "." else relative


def build_spec(options: dict[str, Any], root: Path, defaults: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """A spec (without command or notebook) from SPEC_OPTIONS values; `defaults` fill the gaps."""
    defaults = defaults or {}
    merged = {k: (options.get(k) if options.get(k) not in (None, ()) else defaults.get(k)) for k in SPEC_OPTIONS}
    spec: dict[str, Any] = {"workspace": workspace_of(root, merged["workspace"]),
                            "env": {**defaults.get("env_dict", {}), **parse_env(list(options.get("env") or []))}}
    for key in ("backend", "image", "name", "project", "timeout"):
        if merged[key] is not None:
            spec[key] = merged[key]
    if merged["git"]:
        url, ref = git_ref(merged["git"])
        spec["workspace"] = {"git": url, **({"ref": ref} if ref else {})}
    if merged["instance"] is not None:
        spec["instance_type"] = merged["instance"]
    if merged["expose"]:
        spec["expose"] = parse_expose(list(merged["expose"]))
    if merged["dataset"]:
        spec["datasets"] = parse_datasets(list(merged["dataset"]))
    if merged["model"]:
        spec["models"] = parse_datasets(list(merged["model"]), "--model")
    resources = {k: merged[k] for k in ("gpus", "cpus", "memory") if merged[k] is not None}
    if resources:
        spec["resources"] = resources
    return spec


def notebook_spec(spec: dict[str, Any], root: Path, path: str, parameters: list[str],
                  kernel: Optional[str]) -> dict[str, Any]:
    """`spec` running the notebook at `path` (relative to here, inside its workspace)."""
    folder = (root / spec["workspace"]).resolve()
    try:
        notebook = (Path.cwd() / path).resolve().relative_to(folder).as_posix()
    except ValueError:
        raise ValueError(f"the notebook {path} is outside the job's workspace ({folder})") from None
    return {**spec, "notebook": notebook, "parameters": parse_parameters(parameters),
            **({"kernel": kernel} if kernel else {})}


def describe(spec: dict[str, Any]) -> str:
    """What a job runs, in one line: its command, or its notebook with its parameters."""
    if spec.get("notebook"):
        given = " ".join(f"-p {k}={json.dumps(v)}" for k, v in (spec.get("parameters") or {}).items())
        return f"notebook: {spec['notebook']}" + (f" {given}" if given else "")
    command = spec["command"]
    return "command: " + (command if isinstance(command, str) else shlex.join(command))
