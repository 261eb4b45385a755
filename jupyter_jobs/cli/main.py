"""`jupyter jobs` (the `jupyter-jobs` command): the job service from a terminal.

One more thin face over the service, on the magic's own client (kernel/client.py) and its
options (kernel/specs.py). It talks to `--url`/`--token` (or `JUPYTER_JOBS_URL`), else to the
running Jupyter server whose root holds the current folder (servers.py), else to a service
embedded in the command. Either way the current folder is the job's workspace, relative to
the server's root. Human tables by default, `--json` for scripts; these global options work
before or after the subcommand.

Exit codes: 0 done (a job that succeeded); for `run`/`notebook` that wait, `logs -f` and
`workflow run --wait`, the job's own exit code, or 1 for another failure (timeout, out of
memory, lost), 3 cancelled or skipped; 2 bad usage or a refused request (400); 4 not found
(404); 5 a conflict (409); 6 no service; 130 stopped following with Ctrl-C (the job goes on).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional
from collections.abc import Iterator

import click
import yaml

from ..kernel.client import EmbeddedService, ServiceError
from ..kernel.display import status_text, stream_output
from ..kernel.specs import describe, notebook_spec, workspace_of
from ..kernel.workflow import RUN_OVER, table_text
from .context import _EXIT, Cli, _Group, _usage, pass_cli, spec_options
from .deploy import deploy, deployment

def _columns() -> Optional[int]:
    """How wide a table may be: $COLUMNS, else the terminal's width; None when stdout is not a
    terminal (a pipe or a file gets whole lines, for grep)."""
    given = os.environ.get("COLUMNS", "")
    if given.isdigit():
        return int(given)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _table(header: list[str], rows: list[list[str]], keep: tuple[str, ...] = ("id", "status")) -> str:
    """Columns as wide as their widest cell. Where that overflows the terminal, the widest
    columns not in `keep` lose a character at a time, their cells cut with "…": ids stay
    whole, since they are what the next command needs."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    limit = _columns()
    excess = sum(widths) + 2 * (len(widths) - 1) - limit if limit else 0
    while excess > 0:
        cuttable = [i for i, name in enumerate(header) if name not in keep and widths[i] > 3]
        if not cuttable:
            break
        widths[max(cuttable, key=lambda i: widths[i])] -= 1
        excess -= 1
    return "\n".join("  ".join((c if len(c) <= w else c[:w - 1] + "…").ljust(w) for c, w in zip(row, widths))
                     .rstrip() for row in cells)


def _jobs_table(page: dict[str, Any]) -> str:
    return _table(["id", "status", "backend", "project", "name", "created", "exit"],
                  [[j["id"], j["status"], j["backend"], j["project"], j["spec"].get("name") or "",
                    (j["created_at"] or "")[:19].replace("T", " "),
                    "" if j["exit_code"] is None else str(j["exit_code"])] for j in page["jobs"]],
                  keep=("id", "status", "created", "exit"))


def _exit_of(job: dict[str, Any]) -> int:
    if job["status"] == "succeeded":
        return 0
    if job["status"] in ("cancelled", "skipped"):
        return 3
    code = job.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run your folder's code as jobs: local processes, containers, Slurm.

    The current folder is the job's workspace. Commands talk to --url/--token (or
    JUPYTER_JOBS_URL), else to the running Jupyter server whose root holds this folder, else
    to a service inside the command. --url, --token and --json work before or after the
    subcommand.

    \b
    Examples:
      jupyter jobs run -- python train.py            # follow its output, exit with its code
      jupyter jobs run -d --gpus 1 -- python train.py
      jupyter jobs list --status running,queued
      jupyter jobs logs -f ID ; jupyter jobs cancel ID
      jupyter jobs workflow run --wait flow.yaml
    """
    ctx.ensure_object(Cli)




def _stop_waiting(cli: Cli, what: str, follow: str, cancel: str) -> NoReturn:
    """Ctrl-C while following: only the following stops (the server runs the job on), so say
    how to come back to it or end it."""
    click.echo(f"\nstopped following {what}; it goes on.\n  follow it: {cli.again(follow)}\n"
               f"  cancel it: {cli.again(cancel)}", err=True)
    sys.exit(130)


def _follow(cli: Cli, job_id: str, items: Optional[Iterator[dict[str, Any]]] = None) -> NoReturn:
    """Stream the job's output until it ends, say how it ended, exit with its code."""
    try:
        stream_output(cli.service, job_id, items=items)
        final = cli.service.get(job_id)
    except KeyboardInterrupt:
        if not isinstance(cli.service, EmbeddedService):
            _stop_waiting(cli, f"job {job_id}", f"logs -f {job_id}", f"cancel {job_id}")
        cli.service.cancel(job_id)  # it would die with this process anyway: end it cleanly
        click.echo(f"\njob {job_id} cancelled: no Jupyter server runs it, this command did", err=True)
        sys.exit(130)
    click.echo(status_text(final), err=True)
    sys.exit(_exit_of(final))


def _submit_and_follow(cli: Cli, spec: dict[str, Any], detach: bool) -> None:
    if detach:
        cli.show(cli.service.submit(spec), lambda j: f"job {j['id']} {j['status']}")
        return
    job, items = cli.service.submit_following(spec)  # one request: its output from the start
    click.echo(f"job {job['id']} {job['status']} ({describe(job['spec'])})", err=True)
    _follow(cli, job["id"], items)


@main.command(context_settings={"ignore_unknown_options": True})
@spec_options
@click.option("-d", "--detach", is_flag=True, help="return at once with the job's id")
@click.option("-f", "--file", "job_file", type=click.Path(exists=True, dir_okay=False),
              help="a job file (YAML or JSON, as `jupyter jobs export` writes); options override its fields")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def run(cli: Cli, detach: bool, job_file: Optional[str], command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND (after --) or a job file as a job, on a snapshot of the current folder;
    follow its output and exit with its code. Ctrl-C stops following; the job goes on.

    \b
    Examples:
      jupyter jobs run --gpus 1 -- python train.py --epochs 3
      jupyter jobs run -d -- python train.py        # return at once with the job's id
      jupyter jobs run -w data -- python prep.py    # another folder as the workspace
      jupyter jobs run -f train.yaml -e SEED=2      # a job file; options override its fields
    """
    if bool(job_file) == bool(command):
        raise click.UsageError("give a command (jupyter jobs run -- python train.py) or a job file (-f job.yaml)")
    spec: dict[str, Any] = {}
    if job_file:
        spec = yaml.safe_load(Path(job_file).read_text()) or {}
        if not isinstance(spec, dict):
            raise click.UsageError(f"{job_file} is not a job spec (a mapping of fields)")
    given = {k: v for k, v in options.items() if v not in (None, ())}
    own_workspace = "workspace" in spec and "workspace" not in given
    built = cli.spec(given, folder=not own_workspace)
    if own_workspace:
        built["workspace"] = spec["workspace"]  # the file's own, relative to the server's root
    env = {**spec.get("env", {}), **built.pop("env")}
    resources = {**spec.get("resources", {}), **built.pop("resources", {})}
    spec = {**spec, **built, **({"env": env} if env else {}), **({"resources": resources} if resources else {})}
    if command:
        spec["command"] = list(command)
    _submit_and_follow(cli, spec, detach)


@main.command()
@spec_options
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE",
              help="a parameter (repeatable); the value is read as YAML")
@click.option("-k", "--kernel", help="the kernel that runs it (default: the notebook's own)")
@click.option("-d", "--detach", is_flag=True, help="return at once with the job's id")
@click.argument("path")
@pass_cli
def notebook(cli: Cli, path: str, parameters: tuple[str, ...], kernel: Optional[str], detach: bool,
             **options: Any) -> None:
    """Run the notebook at PATH as a job, with parameters; as `run`, it follows and exits with its code.

    \b
    Examples:
      jupyter jobs notebook train.ipynb -p lr=0.01 -p epochs=3
      jupyter jobs notebook -d --gpus 1 train.ipynb
    """
    spec = _usage(lambda: notebook_spec(cli.spec(options), cli.root, path, list(parameters), kernel))
    _submit_and_follow(cli, spec, detach)


@main.command("list")
@click.option("--status", help="comma-separated statuses")
@click.option("--project")
@click.option("--workflow", help="only the jobs of this workflow run")
@click.option("--schedule", help="only the jobs this schedule started")
@click.option("--limit", type=int, default=20, show_default=True)
@pass_cli
def list_(cli: Cli, **query: Any) -> None:
    """Recent jobs, newest first, as wide as the terminal.

    \b
    Examples:
      jupyter jobs list --status running,queued
      jupyter jobs list --project mnist --limit 50 --json
    """
    cli.show(cli.service.list(**query), _jobs_table)


@main.command()
@click.argument("job_id")
@pass_cli
def show(cli: Cli, job_id: str) -> None:
    """One job: its status, what it runs, its status changes."""
    def text(job: dict[str, Any]) -> str:
        lines = [status_text(job), describe(job["spec"]), f"workspace: {job['spec']['workspace'] or '.'}"]
        lines += [f"endpoint {e['name']} ({e['state']}): {cli.service.endpoint_url(job, e['name'])}"
                  for e in job.get("endpoints") or [] if e["state"] != "gone"]
        lines += [f"  {e['at'][:19].replace('T', ' ')}  {e['status']}  {e.get('message') or ''}".rstrip()
                  for e in job.get("events", [])]
        return "\n".join(lines)

    cli.show(cli.service.get(job_id), text)


@main.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep streaming until the job ends (resumes after a drop)")
@pass_cli
def logs(cli: Cli, job_id: str, follow: bool) -> None:
    """A job's output (stdout and stderr as they came). With -f, until it ends: then it says
    how the job ended and exits with its code.

    \b
    Examples:
      jupyter jobs logs 3f2a9c0d1e4b > out.txt
      jupyter jobs logs -f 3f2a9c0d1e4b
    """
    if follow:
        _follow(cli, job_id)
    for item in cli.service.logs(job_id):
        if "text" in item:
            (sys.stderr if item["stream"] == "stderr" else sys.stdout).write(item["text"])


@main.command()
@click.argument("job_id")
@pass_cli
def cancel(cli: Cli, job_id: str) -> None:
    """Cancel a queued or running job."""
    cli.show(cli.service.cancel(job_id), status_text)


@main.command()
@click.argument("job_id")
@pass_cli
def rerun(cli: Cli, job_id: str) -> None:
    """The same spec again, on a new snapshot of its workspace."""
    cli.show(cli.service.rerun(job_id), status_text)


@main.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@pass_cli
def export(cli: Cli, job_id: str, fmt: str) -> None:
    """A job's spec as a job file: `jupyter jobs run -f` runs it again."""
    click.echo(cli.service.export(job_id, fmt), nl=False)


@main.command()
@click.argument("job_id")
@click.option("--download", type=click.Path(file_okay=False), help="copy them into this folder")
@pass_cli
def artifacts(cli: Cli, job_id: str, download: Optional[str]) -> None:
    """The files a job wrote to its artifacts folder."""
    listed = cli.service.artifacts(job_id)
    if download:
        for item in listed:
            target = Path(download) / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(cli.service.download(job_id, item["path"]))
    cli.show(listed, lambda items: _table(["path", "size"], [[a["path"], str(a["size"])] for a in items],
                                          keep=("path",)))


@main.command()
@pass_cli
def backends(cli: Cli) -> None:
    """The backends, whether each is available, and the GPUs."""
    cli.show(cli.service.backends(), lambda r: _table(
        ["backend", "available", "why not / what"],
        [[b["name"] + (" (default)" if b["default"] else ""), "yes" if b["available"] else "no",
          b["reason"] or b["description"]] for b in r["backends"]]))


@main.group()
def workflow() -> None:
    """Workflow runs: run FILE, list, show, cancel, rerun."""


@workflow.command("run")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-w", "--workspace", help="folder every job of the run gets (default: the file's folder)")
@click.option("--wait", is_flag=True, help="wait until the run ends (each job's status as it changes), exit 1 if "
              "it failed, 3 if cancelled")
@pass_cli
def workflow_run(cli: Cli, path: str, workspace: Optional[str], wait: bool) -> None:
    """Submit the workflow in PATH (YAML or JSON).

    \b
    Examples:
      jupyter jobs workflow run flow.yaml           # submit; returns at once
      jupyter jobs workflow run --wait flow.yaml    # wait; exit non-zero if the run failed
    """
    folder = _usage(lambda: workspace_of(cli.root, workspace or str(Path(path).parent)))
    run = cli.service.submit_workflow(Path(path).read_text(), folder)
    if not wait:
        cli.show(run, table_text)
        return
    run = _wait_for_run(cli, run)
    cli.show(run, table_text)
    sys.exit(_exit_of(run))


def _wait_for_run(cli: Cli, run: dict[str, Any]) -> dict[str, Any]:
    """Poll the run until it ends, a line on stderr each time one of its jobs changes status."""
    seen: dict[str, str] = {}
    try:
        while True:
            for job in run["jobs"]:
                if seen.get(job["key"]) != job["status"]:
                    seen[job["key"]] = job["status"]
                    click.echo(f"  {job['key']}: {job['status']}", err=True)
            if run["status"] in RUN_OVER:
                return run
            time.sleep(0.5)
            run = cli.service.workflow(run["id"])
    except KeyboardInterrupt:
        _stop_waiting(cli, f"workflow run {run['id']}", f"workflow show {run['id']}", f"workflow cancel {run['id']}")


@workflow.command("save")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-w", "--workspace", help="folder its runs get (default: the file's folder)")
@pass_cli
def workflow_save(cli: Cli, name: str, path: str, workspace: Optional[str]) -> None:
    """Save the workflow in PATH as the next spec version of the named workflow NAME."""
    folder = _usage(lambda: workspace_of(cli.root, workspace or str(Path(path).parent)))
    saved = cli.service.definitions("save", name, {"spec": Path(path).read_text(), "workspace": folder})
    cli.show(saved, lambda d: f"{d['name']} version {d['version']} saved")


@workflow.command("start")
@click.argument("name")
@click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE", help="an input's value (repeatable)")
@click.option("--version", type=int, help="a spec version (default: the newest)")
@click.option("--wait", is_flag=True, help="wait until the run ends; exit 1 if it failed, 3 if cancelled")
@pass_cli
def workflow_start(cli: Cli, name: str, inputs: tuple[str, ...], version: Optional[int], wait: bool) -> None:
    """Run the named workflow NAME with its inputs.

    \b
    Examples:
      jupyter jobs workflow start train -i lr=0.01 -i data=mnist:2 --wait
    """
    given = dict(_usage(lambda: [_pair(i) for i in inputs]))
    run = cli.service.definitions("run", name, {"inputs": given, **({"version": version} if version else {})})
    if wait:
        run = _wait_for_run(cli, run)
    cli.show(run, table_text)
    if wait:
        sys.exit(_exit_of(run))


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--input takes NAME=VALUE, not {text!r}")
    return key, value


@workflow.command("versions")
@click.argument("name")
@pass_cli
def workflow_versions(cli: Cli, name: str) -> None:
    """A named workflow's spec versions, newest first."""
    cli.show(cli.service.definitions("history", name), lambda d: _table(
        ["name", "version", "saved", "by", "workspace"],
        [[v["name"], str(v["version"]), v["created_at"][:19], v["created_by"], v["workspace"]] for v in d["versions"]]))


@workflow.command("list")
@click.option("--status", help="comma-separated run statuses")
@click.option("--limit", type=int, default=20, show_default=True)
@pass_cli
def workflow_list(cli: Cli, **query: Any) -> None:
    """Workflow runs, newest first."""
    cli.show(cli.service.workflows(**query), lambda p: _table(
        ["id", "status", "name", "jobs", "created"],
        [[r["id"], r["status"], r["name"], " ".join(f"{n} {s}" for s, n in r.get("counts", {}).items()),
          r["created_at"][:19].replace("T", " ")] for r in p["workflows"]]))


for _verb, _help in (("show", "One run and its jobs."), ("cancel", "Cancel every job of the run not ended."),
                     ("rerun", "Run its failed, cancelled and skipped jobs again.")):
    def _make(verb: str) -> Callable[..., None]:
        @pass_cli
        def act(cli: Cli, run_id: str) -> None:
            cli.show(cli.service.workflow(run_id, None if verb == "show" else verb), table_text)
        return act

    workflow.command(_verb, help=_help)(click.argument("run_id")(_make(_verb)))


@main.group()
def schedule() -> None:
    """Schedules: create, list, show, pause, resume, delete."""


def _schedules_text(data: Any) -> str:
    return _table(["id", "name", "cron", "timezone", "next", "last job", "note"],
                  [[s["id"], s["name"], s["cron"], s["timezone"],
                    "paused" if s["paused"] else (s["next_at"] or "")[:19], s["last_job"] or "", s["message"] or ""]
                   for s in data.get("schedules", [data])])


@schedule.command("create")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--cron", required=True, help="five fields (minute hour day month weekday); a sixth for seconds")
@click.option("--timezone", default="UTC", show_default=True, help="an IANA time zone, e.g. Europe/Berlin")
@click.option("--name")
@click.option("--catch-up", is_flag=True, help="after an outage, run a missed time once at start")
@click.option("--overlap", type=click.Choice(["skip", "allow"]), default="skip", show_default=True)
@pass_cli
def schedule_create(cli: Cli, job_file: str, **fields: Any) -> None:
    """Run the job file JOB_FILE on a cron expression."""
    body = {"spec": yaml.safe_load(Path(job_file).read_text()), **{k: v for k, v in fields.items() if v is not None}}
    cli.show(cli.service.schedules("create", body=body), _schedules_text)


@schedule.command("list")
@pass_cli
def schedule_list(cli: Cli) -> None:
    """Schedules, newest first."""
    cli.show(cli.service.schedules("list"), _schedules_text)


for _verb in ("show", "pause", "resume", "delete"):
    def _make_schedule(verb: str) -> Callable[..., None]:
        @pass_cli
        def act(cli: Cli, schedule_id: str) -> None:
            reply = cli.service.schedules("get" if verb == "show" else verb, schedule_id)
            if verb == "delete":
                cli.show({"id": schedule_id, "deleted": True}, lambda d: f"schedule {d['id']} deleted")
            else:
                cli.show(reply, _schedules_text)
        return act

    schedule.command(_verb, help=f"{_verb.capitalize()} a schedule.")(click.argument("schedule_id")(
        _make_schedule(_verb)))


@main.group()
def dataset() -> None:
    """Datasets: named, immutable versions that jobs read (--dataset NAME[:VERSION] on run)."""


@main.group()
def model() -> None:
    """Models: versions registered from a job's artifacts, with its metrics (--model on run)."""


def _size(n: int) -> str:
    return next(f"{n / 1024**i:.1f} {u}" for i, u in enumerate(("B", "KiB", "MiB", "GiB", "TiB"))
                if n < 1024 ** (i + 1) or u == "TiB").replace(".0 B", " B")


def _versions_text(data: Any) -> str:
    rows = data.get("versions") or ([data] if "version" in data else [d["latest"] for d in next(
        v for k, v in data.items() if k in ("datasets", "models"))])
    text = _table(["name", "version", "files", "size", "made", "from"],
                  [[v["name"], str(v["version"]), str(v["files"]), _size(v["size"]), v["created_at"][:19],
                    v["source"].get("folder") or f"job {v['source'].get('job')} {v['source'].get('path') or ''}"]
                   for v in rows])
    readers = data.get("read_by")
    return text + (f"\nread by: {', '.join(r['id'] for r in readers)}" if readers else "")


def _version_commands(group: click.Group, kind: str) -> None:
    """list, show, create, download, delete for datasets or models (the same verbs and shapes)."""
    @group.command("list", help=f"{kind.capitalize()}s, each with its newest version.")
    @pass_cli
    def list_versions(cli: Cli) -> None:
        cli.show(getattr(cli.service, f"{kind}s")("list"), _versions_text)

    @group.command("show")
    @click.argument("name")
    @click.argument("version", type=int, required=False)
    @pass_cli
    def show_versions(cli: Cli, name: str, version: Optional[int]) -> None:
        """Its versions, or one version with the jobs that read it."""
        cli.show(getattr(cli.service, f"{kind}s")("version" if version else "get", name, version), _versions_text)

    @group.command("create")
    @click.argument("name")
    @click.option("--folder", type=click.Path(exists=True, file_okay=False), help="a folder under the server's root")
    @click.option("--job", "job_id", help="a finished job whose artifacts it is made from")
    @click.option("--path", default="", help="a file or folder of that job's artifacts (default: all)")
    @click.option("--framework", hidden=kind != "model", help="a model's framework or type (pytorch, onnx...)")
    @click.option("--description", hidden=kind != "model", help="what the model is")
    @pass_cli
    def create_version(cli: Cli, name: str, folder: Optional[str], job_id: Optional[str], path: str,
                       **about: Optional[str]) -> None:
        """A new version of NAME from --folder or from --job's artifacts."""
        body = {"job": job_id, "path": path} if job_id else {"folder": _usage(lambda: workspace_of(cli.root, folder))}
        if kind == "model":
            body.update({k: v for k, v in about.items() if v is not None})
        elif any(about.values()):
            raise click.UsageError("--framework and --description describe models")
        cli.show(getattr(cli.service, f"{kind}s")("create", name, body=body), _versions_text)

    @group.command("delete")
    @click.argument("name")
    @click.argument("version", type=int)
    @pass_cli
    def delete_version(cli: Cli, name: str, version: int) -> None:
        """Delete a version no queued or running job reads."""
        getattr(cli.service, f"{kind}s")("delete", name, version)
        cli.show({"name": name, "version": version, "deleted": True}, lambda d: f"{name} version {version} deleted")


_version_commands(dataset, "dataset")
_version_commands(model, "model")
main.add_command(deploy)
main.add_command(deployment)


def run_main() -> None:
    """The entry point: service errors as one line and an exit code that says which."""
    try:
        main(standalone_mode=True)
    except ServiceError as exc:
        click.echo(f"jupyter jobs: {exc}", err=True)
        if len(exc.errors) > 1:  # one line each, below the joined message
            for error in exc.errors:
                click.echo(f"  {error['field']}: {error['message']}", err=True)
        sys.exit(_EXIT.get(exc.status or 0, 6 if exc.status is None else 1))
