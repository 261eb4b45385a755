"""What every `jupyter jobs` command shares: the global options (before or after the
subcommand), the service they lead to, the job options of every face, and usage errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import click
from click.core import ParameterSource

from ..kernel.client import EmbeddedService, JobsService, RestService
from ..kernel.specs import SPEC_ARGUMENTS, build_spec
from . import servers

_EXIT = {400: 2, 404: 4, 409: 5}
#: the names app/config.py gives them; importing that module would load the whole service
ENV_URL, ENV_TOKEN, ENV_ROOT = "JUPYTER_JOBS_URL", "JUPYTER_JOBS_TOKEN", "JUPYTER_JOBS_ROOT"


class Cli:
    """What every command shares: the global options (given before or after the subcommand)
    and the service they lead to, reached on first use so `--help` and usage errors cost nothing."""

    def __init__(self) -> None:
        self.url: Optional[str] = None
        self.token: Optional[str] = None
        self.as_json = False
        self._service: Optional[JobsService] = None
        self._root: Optional[Path] = None  # the server's root, where this machine knows it

    @property
    def service(self) -> JobsService:
        if self._service is None:
            self._service = self._connect()
        return self._service

    def _connect(self) -> JobsService:
        here = Path.cwd().resolve()
        if self.url:  # its root from its runtime file (a server of this machine), else from the env
            found = servers.matching(self.url)
            named = os.environ.get(ENV_ROOT)
            self._root = found.root if found else Path(named).resolve() if named else None
            token = self.token if self.token is not None else found.token if found else ""
            return RestService(self.url, token, self._root or here)
        if found := servers.serving(here):
            self._root = found.root
            return RestService(found.url, found.token, found.root)
        click.echo("jupyter jobs: no Jupyter server runs here; the service runs inside this command "
                   "(its jobs stop when it ends)", err=True)
        self._root = here
        return EmbeddedService(here)

    @property
    def root(self) -> Path:
        """The folder the server serves, as this machine sees it: workspaces are folders under it."""
        self.service  # noqa: B018 (connecting learns the root)
        if self._root is None:
            raise click.UsageError(
                f"the Jupyter server at {self.url} is not listed in this machine's Jupyter runtime folder "
                f"({servers.runtime_dir()}), so which folder it serves is unknown and the current folder cannot "
                f"be the job's workspace: set {ENV_ROOT} to the server's root folder if it shares this file "
                "system, or use --git URL (or a job file's own workspace)")
        return self._root

    def spec(self, options: dict[str, Any], folder: bool = True) -> dict[str, Any]:
        """A spec from the shared options, its workspace the current folder (or --workspace)
        under the server's root. `folder=False`, or --git: the workspace comes from elsewhere,
        so no root is needed (a remote server works)."""
        if options.get("git") or not folder:
            return _usage(lambda: build_spec(options, Path.cwd()))  # its folder is replaced: any root does
        root, here = self.root, Path.cwd().resolve()
        if not options.get("workspace") and not servers.under(here, root):
            raise click.UsageError(
                f"the current folder {here} is not under {root}, the folder the Jupyter server at "
                f"{self.service.where} serves, so it cannot be the job's workspace: run the command from a "
                "folder under it, pass --workspace FOLDER (a folder under it), or use --git URL")
        return _usage(lambda: build_spec(options, root))

    def again(self, command: str) -> str:
        """`jupyter jobs COMMAND` as the user can type it later, reaching this same server."""
        url = f" --url {self.url}" if self.url and self.url != os.environ.get(ENV_URL) else ""
        return f"jupyter jobs {command}{url}"

    def show(self, data: Any, text: Callable[[Any], str]) -> None:
        click.echo(json.dumps(data, indent=2) if self.as_json else text(data))


def spec_options(func: Callable) -> Callable:
    """The options every face shares (kernel/specs.py), as click options."""
    for flags, settings in reversed(SPEC_ARGUMENTS):
        func = click.option(*flags, type=settings.get("type"), multiple=settings.get("action") == "append",
                            metavar=settings.get("metavar"), help=settings["help"])(func)
    return func


def _usage(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option lands on the one Cli wherever it was typed; on the command line the
    later one wins, from the environment it only fills a gap."""
    name = param.name or ""
    if value in (None, False):
        return
    cli = ctx.ensure_object(Cli)
    if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE or not getattr(cli, name):
        setattr(cli, name, value)


def _global_options() -> list[click.Option]:
    """The options of `jupyter jobs` itself, which each command takes too (`list --json`)."""
    given = {"expose_value": False, "callback": _set_global}
    return [click.Option(["--url"], envvar=ENV_URL, help="the Jupyter server (default: the running one whose root "
                         "holds this folder, as `jupyter server list` lists them)", **given),
            click.Option(["--token"], envvar=ENV_TOKEN, help="its token (default: from its runtime file)", **given),
            click.Option(["--json", "as_json"], is_flag=True, help="JSON replies, for scripts", **given)]


class _Group(click.Group):
    """A group whose commands and sub-groups all take the global options, so they work where
    people type them: before the subcommand or after it."""

    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())

    def add_command(self, cmd: click.Command, name: Optional[str] = None) -> None:
        if not isinstance(cmd, _Group):
            cmd.params.extend(_global_options())
        super().add_command(cmd, name)



pass_cli = click.make_pass_decorator(Cli)
