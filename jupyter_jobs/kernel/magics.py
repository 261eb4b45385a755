"""`%%job` and `%job`: parse the options, build a spec, hand over to display.run_and_watch.

    %load_ext jupyter_jobs

    %%job --image pytorch-cuda --gpus 1 --memory 16g --timeout 2h --name train-small
    import torch
    print(torch.cuda.is_available())
"""

from __future__ import annotations

import argparse
import html
import os
import shlex
import sys
import time
from urllib.parse import quote
from pathlib import Path
from typing import Any, Callable, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .client import ENV_URL, JobsService, ServiceError, connect
from .display import TERMINAL, Job, JobFailed, JobInterrupted, run_and_watch, status_text, stream_output
from .specs import SPEC_ARGUMENTS, build_spec, deployment_text, describe, notebook_spec, parse_env, parse_replicas
from .specs import workspace_of
from .specs import SPEC_OPTIONS as SPEC_OPTIONS_SHARED
from .workflow import Best, Workflow, WorkflowFailed, run_workflow, sweep_matrix, table_text

SPEC_OPTIONS = (*SPEC_OPTIONS_SHARED, "python")
#: the magic's options: the shared ones, and the interpreter for a cell's body
_SPEC_ARGUMENTS = [*SPEC_ARGUMENTS, (("--python",), {"help": "Python interpreter for cell bodies (default: python3)"})]


class JobsError(RuntimeError):
    """A request the service refused, shown as one readable line."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mjupyter_jobs\x1b[0m: {self}"]


def spec_arguments(func: Callable) -> Callable:
    """The options every way of starting a job shares, as magic_arguments (for %%job?)."""
    for args, kwargs in reversed(_SPEC_ARGUMENTS):
        func = argument(*args, **kwargs)(func)
    return func


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    """The same options on an argparse parser (%job run, %job config)."""
    for args, kwargs in _SPEC_ARGUMENTS:
        parser.add_argument(*args, **kwargs)


def _usage(call: Callable[[], Any]) -> Any:
    """A bad option, as IPython shows usage errors: one line."""
    try:
        return call()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


@magics_class
class JobMagics(Magics):
    """Run the notebook's folder as a job; see `%job --help` and `%%job?`."""

    def __init__(self, shell: Any, service: Optional[JobsService] = None):
        super().__init__(shell)
        self._service = service
        self.defaults: dict[str, Any] = {}

    @property
    def service(self) -> JobsService:
        if self._service is None:
            self._service = connect()
        return self._service

    # -- building specs ---------------------------------------------------------------------
    def _workspace(self, given: Optional[str]) -> str:
        return _usage(lambda: workspace_of(self.service.root_dir, given))

    def _spec(self, args: argparse.Namespace, command: Any) -> dict[str, Any]:
        options = {k: getattr(args, k, None) for k in SPEC_OPTIONS}
        return {"command": command, **_usage(lambda: build_spec(options, self.service.root_dir, self.defaults))}

    def _submit(self, spec: dict[str, Any], args: argparse.Namespace) -> Job:
        try:
            return run_and_watch(self.service, spec, detach=args.detach, raise_on_failure=not args.no_raise)
        except ServiceError as exc:
            raise JobsError(str(exc)) from None

    # -- %%job ------------------------------------------------------------------------------
    @magic_arguments()
    @spec_arguments
    @argument("-d", "--detach", action="store_true", help="return at once; a status line keeps updating")
    @argument("--shell", action="store_true", help="run the cell as a bash script instead of Python")
    @argument("--no-raise", action="store_true", help="do not raise when the job fails")
    @argument("--sweep", action="append", metavar="NAME=V1,V2", help="run the cell once per combination of "
              "these values (repeatable); each job reads its own as $MATRIX_<NAME>")
    @argument("--sweep-metric", metavar="NAME:min|max", help="mark the best job of a sweep by this metric")
    @cell_magic
    def job(self, line: str, cell: str) -> Any:
        """Run this cell as a job on a snapshot of the notebook's folder, streaming its output.

        The cell is Python (run by `python3` in the job's workspace; `--shell`: bash). Without
        --detach the cell blocks like a local run and raises if the job fails; interrupting
        the kernel cancels the job. The value is a Job: .id .status .wait() .logs() .follow()
        .cancel() .artifacts .download(path). Defaults for every cell: `%job config ...`.
        """
        args = parse_argstring(self.job, line)
        python = args.python or self.defaults.get("python") or "python3"
        command = ["bash", "-c", cell] if args.shell else [python, "-c", cell]
        spec = {**self._spec(args, command), "cell": f"%%job {line}".rstrip() + "\n" + cell}  # as written
        if args.sweep:
            return self._sweep(spec, args)
        return self._submit(spec, args)

    def _sweep(self, spec: dict[str, Any], args: argparse.Namespace) -> Workflow:
        """The cell once per combination: a one-job workflow with a matrix, shown as a table of
        the combinations with their statuses and last metric values, the best one marked."""
        try:
            matrix, best = sweep_matrix(args.sweep), Best(args.sweep_metric) if args.sweep_metric else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        workspace, name = spec.pop("workspace"), spec.pop("name", None)  # each job: cell[k=v,...]
        flow = {"name": name or "sweep", "jobs": {"cell": {**spec, "matrix": matrix}}}
        if args.sweep_metric:  # kept with the run: JupyterLab's run tab stars the best row too
            flow["best"] = f"{best.name}:{'min' if best.lowest else 'max'}"
        try:
            return run_workflow(self.service, flow, workspace, detach=args.detach, follow=None,
                                raise_on_failure=not args.no_raise, best=best, with_metrics=True)
        except ServiceError as exc:
            raise JobsError(str(exc)) from None

    # -- %%workflow ---------------------------------------------------------------------------
    @magic_arguments()
    @argument("-w", "--workspace", help="folder every job of the run gets (default: the notebook's folder)")
    @argument("-f", "--follow", metavar="JOB", help="stream this job's output (a name, or name[k=v,...])")
    @argument("-d", "--detach", action="store_true", help="return at once; the table keeps updating")
    @argument("--no-raise", action="store_true", help="do not raise when the run does not succeed")
    @cell_magic
    def workflow(self, line: str, cell: str) -> Workflow:
        """Run the cell (a workflow in YAML: jobs with needs, matrix, ${{ }} references) as a
        workflow run; a table of its jobs updates in place. The value is a Workflow: .jobs
        .job(name) .wait() .cancel() .rerun()."""
        args = parse_argstring(self.workflow, line)
        return self._run_workflow(cell, args)

    def _run_workflow(self, spec: Any, args: argparse.Namespace) -> Workflow:
        try:
            return run_workflow(self.service, spec, self._workspace(args.workspace), detach=args.detach,
                                follow=args.follow, raise_on_failure=not args.no_raise)
        except ServiceError as exc:
            raise JobsError(str(exc)) from None

    # -- %job ... -----------------------------------------------------------------------------
    def _parser(self) -> _Parser:
        parser = _Parser(prog="%job", description="Run and watch jupyter_jobs jobs. As a cell magic, "
                         "%%job runs the cell as a job (see %%job?).")
        sub = parser.add_subparsers(dest="action", metavar="ACTION")
        run = sub.add_parser("run", help="run a command as a job: %%job run python train.py --epochs 3")
        _add_spec_options(run)
        run.add_argument("-d", "--detach", action="store_true", help="return at once")
        run.add_argument("--no-raise", action="store_true", help="do not raise when the job fails")
        run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
        book = sub.add_parser("notebook", help="run a notebook as a job: %%job notebook train.ipynb -p lr=0.01")
        _add_spec_options(book)
        book.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE", default=[],
                          help="a parameter (repeatable); the value is read as YAML: 0.01 a number, true a bool, "
                          "[1, 2] a list, anything else a string")
        book.add_argument("-k", "--kernel", help="the kernel that runs it (default: the notebook's own)")
        book.add_argument("-d", "--detach", action="store_true", help="return at once")
        book.add_argument("--no-raise", action="store_true", help="do not raise when the job fails")
        book.add_argument("path", help="the notebook (inside the workspace, by default this notebook's folder)")
        config = sub.add_parser("config", help="defaults for the following jobs of this notebook")
        _add_spec_options(config)
        config.add_argument("--reset", action="store_true", help="forget all defaults")
        sub.add_parser("backends", help="the backends, whether each is available, and the GPUs")
        listing = sub.add_parser("list", help="recent jobs")
        listing.add_argument("--status", help="comma-separated statuses")
        listing.add_argument("--project")
        listing.add_argument("--limit", type=int, default=20)
        for name, text in (("show", "a job's details"), ("cancel", "cancel a job"),
                           ("artifacts", "a job's artifacts")):
            sub.add_parser(name, help=text).add_argument("id")
        flow = sub.add_parser("workflow", help="workflow runs: run FILE | show ID | cancel ID | rerun ID; named "
                              "workflows: save NAME FILE | start NAME [-i NAME=VALUE ...] | versions NAME")
        flow.add_argument("verb", choices=["run", "show", "cancel", "rerun", "save", "start", "versions"])
        flow.add_argument("target", help="a YAML file (run), a run id, or a named workflow's name")
        flow.add_argument("file", nargs="?", help="the YAML file a named workflow's next version is saved from")
        flow.add_argument("-i", "--input", action="append", default=[], metavar="NAME=VALUE",
                          help="an input of a named workflow's run (repeatable)")
        flow.add_argument("--version", type=int, help="the named workflow's spec version (default: the newest)")
        flow.add_argument("-w", "--workspace", help="folder every job of the run gets")
        flow.add_argument("-f", "--follow", metavar="JOB", help="stream this job's output")
        flow.add_argument("-d", "--detach", action="store_true", help="return at once")
        flow.add_argument("--no-raise", action="store_true", help="do not raise when the run does not succeed")
        for kind in ("dataset", "model"):
            versions = sub.add_parser(kind, help=f"{kind}s: list | show NAME [VERSION] | create NAME --folder F "
                                      f"| create NAME --job ID [--path P] | delete NAME VERSION")
            versions.add_argument("verb", choices=["list", "show", "create", "delete"])
            versions.add_argument("name", nargs="?")
            versions.add_argument("version", nargs="?", type=int)
            versions.add_argument("--folder", help="a folder (relative to here) under the server's root")
            versions.add_argument("--job", help="a finished job whose artifacts it is made from")
            versions.add_argument("--path", default="", help="a file or folder of that job's artifacts")
            if kind == "model":
                versions.add_argument("--framework", help="pytorch, onnx, tensorflow, custom...")
                versions.add_argument("--description")
        logs = sub.add_parser("logs", help="a job's output")
        logs.add_argument("id")
        logs.add_argument("-f", "--follow", action="store_true", help="keep streaming until it ends")
        _add_deploy(sub)
        return parser

    @line_magic("job")
    def job_line(self, line: str) -> Any:
        """%job run|config|list|logs|show|cancel|artifacts ...; `%job --help` for all.

        Actions that print (config, backends, list, logs, artifacts) return None: IPython would
        echo a returned dict or list under what they printed. run/show/cancel return a Job."""
        parser = self._parser()
        words = shlex.split(line)
        if not words or words[0] in ("-h", "--help", "help"):
            parser.print_help()
            return None
        command: list[str] = []
        if words[0] == "deploy" and "--" in words:  # its options come after its name: the command after --
            words, command = words[:words.index("--")], words[words.index("--") + 1:]
        try:
            args = parser.parse_args(words)
        except SystemExit:  # --help of a sub-command printed its text
            return None
        if command:
            args.command = command
        try:
            return getattr(self, f"_do_{args.action}")(args)
        except ServiceError as exc:
            raise JobsError(str(exc)) from None

    def _do_run(self, args: argparse.Namespace) -> Job:
        if not args.command:
            raise UsageError("%job run needs a command, e.g. %job run python train.py")
        return self._submit(self._spec(args, shlex.join(args.command)), args)

    def _do_notebook(self, args: argparse.Namespace) -> Job:
        options = {k: getattr(args, k, None) for k in SPEC_OPTIONS}
        spec = _usage(lambda: notebook_spec(build_spec(options, self.service.root_dir, self.defaults),
                                            self.service.root_dir, args.path, args.parameter, args.kernel))
        return self._submit(spec, args)

    def _do_workflow(self, args: argparse.Namespace) -> Any:
        if args.verb in ("save", "start", "versions"):
            return named_workflow(self.service, args, self._workspace)
        if args.verb == "run":
            return self._run_workflow(_flow_file(args.target, args), args)
        run = Workflow(self.service, self.service.workflow(args.target, None if args.verb == "show" else args.verb))
        print(table_text(run._data))
        return run

    def _do_deploy(self, args: argparse.Namespace) -> None:
        if not args.command:
            raise UsageError("%job deploy needs NAME and the command that serves, e.g. %job deploy api --expose "
                             "8000:web -- python serve.py")
        deploy(self.service, args, self._spec(args, shlex.join(args.command)))

    def _do_deployment(self, args: argparse.Namespace) -> None:
        deployment_action(self.service, args)

    def _do_dataset(self, args: argparse.Namespace) -> Any:
        return self._versions("datasets", args)

    def _do_model(self, args: argparse.Namespace) -> Any:
        return self._versions("models", args)

    def _versions(self, kind: str, args: argparse.Namespace) -> Any:
        """Datasets or models: what the REST API returns (a dict), or None after a delete."""
        if args.verb != "list" and not args.name:
            raise UsageError(f"%job {kind[:-1]} {args.verb} needs a NAME")
        if args.verb == "list":
            return self.service.versions(kind, "list")
        if args.verb == "show":
            return self.service.versions(kind, "version" if args.version else "get", args.name, args.version)
        if args.verb == "delete":
            if not args.version:
                raise UsageError(f"%job {kind[:-1]} delete needs NAME VERSION")
            self.service.versions(kind, "delete", args.name, args.version)
            return None
        body: dict[str, Any] = {"job": args.job, "path": args.path} if args.job else {
            "folder": _usage(lambda: workspace_of(self.service.root_dir, args.folder))}
        for key in ("framework", "description"):
            if getattr(args, key, None):
                body[key] = getattr(args, key)
        return self.service.versions(kind, "create", args.name, body=body)

    def _do_config(self, args: argparse.Namespace) -> None:
        if args.reset:
            self.defaults.clear()
        for key in SPEC_OPTIONS:
            value = getattr(args, key, None)
            if key == "env" and value:
                env = _usage(lambda v=value: parse_env(v))
                self.defaults["env_dict"] = {**self.defaults.get("env_dict", {}), **env}
            elif value is not None:
                self.defaults[key] = value
        print("jupyter_jobs defaults:", ", ".join(f"{k}={v}" for k, v in self.defaults.items()) or "none")

    def _do_backends(self, args: argparse.Namespace) -> None:
        reply = self.service.backends()
        _table(["backend", "available", "why not / what"],
               [(b["name"] + (" (default)" if b["default"] else ""), "yes" if b["available"] else "no",
                 b["reason"] or b["description"]) for b in reply["backends"]])
        gpus = reply.get("gpus") or []
        listed = ", ".join(f"{g['index']}: {g['name']}" for g in gpus)
        print(f"GPUs: {listed or 'none on this host'}")

    def _do_list(self, args: argparse.Namespace) -> None:
        page = self.service.list(status=args.status, project=args.project, limit=args.limit)
        rows = [(j["id"], j["status"], j["backend"], j["project"], j.get("name") or "",
                 j["created_at"][:19].replace("T", " "), "" if j["exit_code"] is None else str(j["exit_code"]))
                for j in page["jobs"]]
        _table(["id", "status", "backend", "project", "name", "created", "exit"], rows)

    def _do_show(self, args: argparse.Namespace) -> Job:
        job = Job(self.service, self.service.get(args.id))
        print(status_text(job.info))
        spec = job.info["spec"]
        print(f"{describe(spec)}\nworkspace: {spec['workspace'] or '.'}  image: {spec.get('image') or '-'}"
              f"  resources: {spec['resources']}")
        for event in job.info.get("events", []):
            print(f"  {event['at'][:19].replace('T', ' ')}  {event['status']}  {event.get('message') or ''}")
        return job

    def _do_cancel(self, args: argparse.Namespace) -> Job:
        job = Job(self.service, self.service.cancel(args.id))
        print(status_text(job.info))
        return job

    def _do_logs(self, args: argparse.Namespace) -> None:
        if args.follow:
            stream_output(self.service, args.id)
            return
        for item in self.service.logs(args.id):
            (sys.stderr if item["stream"] == "stderr" else sys.stdout).write(item["text"])

    def _do_artifacts(self, args: argparse.Namespace) -> None:
        items = self.service.artifacts(args.id)
        if not items:
            print(f"job {args.id} has no artifacts")
            return
        base = os.environ.get(ENV_URL)
        if base:
            from IPython.display import display

            path = "/" + base.split("://", 1)[-1].split("/", 1)[-1].strip("/")
            prefix = (path.rstrip("/") + f"/jupyter-jobs/jobs/{args.id}/artifacts/").replace("//", "/")
            links = "".join(f'<li><a href="{html.escape(prefix + quote(a["path"]))}" download>'
                            f'{html.escape(a["path"])}</a>'
                            f' ({a["size"]:,} bytes)</li>' for a in items)
            text = "\n".join(f"{a['path']}  {a['size']:,} bytes" for a in items)
            display({"text/plain": text, "text/html": f"<ul>{links}</ul>"}, raw=True)
        else:
            _table(["path", "bytes"], [(a["path"], f"{a['size']:,}") for a in items])


def _table(header: list[str], rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


__all__ = ["TERMINAL", "Job", "JobFailed", "JobInterrupted", "JobMagics", "JobsError", "Workflow", "WorkflowFailed"]


def _flow_file(path_text: str, args: argparse.Namespace) -> str:
    """A workflow file's text; its folder becomes the workspace unless one was given (as a
    notebook's cell runs in the notebook's)."""
    path = Path(path_text)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the workflow file {path}: {exc.strerror}") from None
    if args.workspace is None:
        args.workspace = str(path.parent) if str(path.parent) != "." else None
    return text


def named_workflow(service: Any, args: argparse.Namespace, workspace: Callable[[Optional[str]], str]) -> Any:
    """%job workflow save NAME FILE | start NAME [-i NAME=VALUE ...] | versions NAME."""
    if args.verb == "save":
        if not args.file:
            raise UsageError("%job workflow save needs NAME FILE")
        text = _flow_file(args.file, args)
        saved = service.definitions("save", args.target, {"spec": text, "workspace": workspace(args.workspace)})
        print(f"{saved['name']} version {saved['version']} saved")
        return None
    if args.verb == "versions":  # printed, as the other listings: a returned list would echo under it
        for v in service.definitions("history", args.target)["versions"]:
            print(f"{v['name']} v{v['version']} · saved {v['created_at'][:19]} by {v['created_by']} · "
                  f"workspace {v['workspace'] or '(root)'}")
        return None
    pairs = [i.partition("=") for i in args.input]
    if any(not sep or not key for key, sep, _ in pairs):
        raise UsageError("-i takes NAME=VALUE")
    body = {"inputs": {k: v for k, _, v in pairs}, **({"version": args.version} if args.version else {})}
    try:
        return run_workflow(service, None, "", detach=args.detach, follow=args.follow,
                            raise_on_failure=not args.no_raise, started=service.definitions("run", args.target, body))
    except ServiceError as exc:
        raise JobsError(str(exc)) from None


def _add_deploy(sub: Any) -> None:
    """%job deploy NAME [options] -- COMMAND, and %job deployment VERB ..."""
    made = sub.add_parser("deploy", help="serve a command as a deployment (new, or a new version rolled out): "
                          "%%job deploy api --expose 8000:web:/health -r 2 -- python serve.py")
    _add_spec_options(made)
    made.add_argument("-r", "--replicas", metavar="MIN[:MAX]", help="2, or 1:4 autoscaled (default 1)")
    made.add_argument("--wait", action="store_true", help="until it is ready (or its rollout ended)")
    made.add_argument("deployment", help="its name")
    made.add_argument("command", nargs="*", help="the command that serves, after --")
    verbs = sub.add_parser("deployment", help="deployments: list | show NAME | scale NAME MIN[:MAX] | rollback "
                           "NAME VERSION | delete NAME")
    verbs.add_argument("verb", choices=["list", "show", "scale", "rollback", "delete"])
    verbs.add_argument("name", nargs="?")
    verbs.add_argument("value", nargs="?", help="MIN[:MAX] (scale) or VERSION (rollback)")


def deploy(service: Any, args: argparse.Namespace, spec: dict[str, Any]) -> None:
    """Make the deployment, or roll out a new version of it; print it (once settled, --wait)."""
    body: dict[str, Any] = {"spec": spec}
    if args.replicas:
        body["replicas"] = _usage(lambda: parse_replicas(args.replicas))
    try:
        service.deployments("get", args.deployment)
        made = service.deployments("update", args.deployment, body)
    except ServiceError as exc:
        if exc.status != 404:
            raise
        made = service.deployments("create", body={"name": args.deployment, **body})
    deadline = time.monotonic() + 600
    while args.wait and made["status"] not in ("ready", "rollout failed", "failing", "idle") and \
            time.monotonic() < deadline:
        time.sleep(0.5)
        made = service.deployments("get", args.deployment)
    print(deployment_text(made, getattr(service, "url", "")))


def deployment_action(service: Any, args: argparse.Namespace) -> None:
    """%job deployment list | show NAME | scale NAME MIN[:MAX] | rollback NAME VERSION | delete NAME."""
    if args.verb != "list" and not args.name:
        raise UsageError(f"%job deployment {args.verb} needs a NAME")
    if args.verb in ("scale", "rollback") and not args.value:
        raise UsageError(f"%job deployment {args.verb} NAME needs {'MIN[:MAX]' if args.verb == 'scale' else 'VERSION'}")
    if args.verb == "delete":
        service.deployments("delete", args.name)
        print(f"deployment {args.name} deleted")
        return
    if args.verb == "list":
        found = service.deployments("list")["deployments"]
    elif args.verb == "show":
        found = [service.deployments("get", args.name)]
    else:
        body = {"replicas": _usage(lambda: parse_replicas(args.value))} if args.verb == "scale" else {
            "version": _usage(lambda: int(args.value))}
        found = [service.deployments("update", args.name, body)]
    print("\n\n".join(deployment_text(d, getattr(service, "url", "")) for d in found) or "no deployments")
