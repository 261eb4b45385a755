"""`jupyter jobs deploy` and `jupyter jobs deployment ...`: a deployment made or updated from the
options every face shares, then shown, listed, rolled back, scaled and deleted."""

from __future__ import annotations

import time
from typing import Any, Optional

import click

from ..kernel.client import ServiceError
from ..kernel.specs import deployment_text, parse_replicas
from .context import Cli, _Group, _usage, pass_cli, spec_options

SETTLED = ("ready", "rollout failed", "failing", "idle")


def _text(cli: Cli) -> Any:
    return lambda d: "\n\n".join(deployment_text(x, getattr(cli.service, "url", "")) for x in d.get("deployments", [d]))


def _settled(cli: Cli, name: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (d := cli.service.deployments("get", name))["status"] not in SETTLED and time.monotonic() < deadline:
        time.sleep(0.5)
    return d


@click.command(context_settings={"ignore_unknown_options": True})
@spec_options
@click.option("-r", "--replicas", metavar="MIN[:MAX]", help="how many replicas: 2, or 1:4 autoscaled (default 1)")
@click.option("--wait", is_flag=True, help="wait until it is ready (or its rollout ended); exit 1 if it failed")
@click.argument("deployment")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def deploy(cli: Cli, deployment: str, replicas: Optional[str], wait: bool, command: tuple[str, ...],
           **options: Any) -> None:
    """Serve COMMAND (after --) as DEPLOYMENT: replicas behind one stable address per --expose port.
    A deployment that exists gets a new version, rolled out replica by replica.

    \b
    Examples:
      jupyter jobs deploy api --expose 8000:web:/health -r 2 -- python serve.py
      jupyter jobs deploy api --expose 8000:web:/health -r 1:4 --gpus 1 -- python serve.py --v2
    """
    if not command:
        raise click.UsageError("give the command that serves, after --: jupyter jobs deploy NAME --expose "
                               "8000:web -- python serve.py")
    spec = {**cli.spec({k: v for k, v in options.items() if v not in (None, ())}), "command": list(command)}
    body: dict[str, Any] = {"spec": spec}
    if replicas:
        body["replicas"] = _usage(lambda: parse_replicas(replicas))
    try:
        cli.service.deployments("get", deployment)
        made = cli.service.deployments("update", deployment, body)
    except ServiceError as exc:
        if exc.status != 404:
            raise
        made = cli.service.deployments("create", body={"name": deployment, **body})
    if wait:
        made = _settled(cli, deployment)
    cli.show(made, _text(cli))
    if wait and made["status"] != "ready":
        raise SystemExit(1)


@click.group(cls=_Group)
def deployment() -> None:
    """Deployments: list, show, scale, rollback, delete (jupyter jobs deploy makes and updates them)."""


@deployment.command("list")
@pass_cli
def deployment_list(cli: Cli) -> None:
    """Deployments with their state, traffic, addresses and replicas."""
    cli.show(cli.service.deployments("list"), _text(cli))


@deployment.command("show")
@click.argument("name")
@pass_cli
def deployment_show(cli: Cli, name: str) -> None:
    """A deployment with its state, traffic, addresses and replicas."""
    cli.show(cli.service.deployments("get", name), _text(cli))


@deployment.command("scale")
@click.argument("name")
@click.argument("replicas", metavar="MIN[:MAX]")
@pass_cli
def deployment_scale(cli: Cli, name: str, replicas: str) -> None:
    """How many replicas NAME runs: MIN, or between MIN and MAX (autoscaled; MIN 0 scales to zero)."""
    body = {"replicas": _usage(lambda: parse_replicas(replicas))}
    cli.show(cli.service.deployments("update", name, body), _text(cli))


@deployment.command("rollback")
@click.argument("name")
@click.argument("version", type=int)
@pass_cli
def deployment_rollback(cli: Cli, name: str, version: int) -> None:
    """Serve an earlier VERSION of NAME again (rolled out as any update)."""
    cli.show(cli.service.deployments("update", name, {"version": version}), _text(cli))


@deployment.command("delete")
@click.argument("name")
@pass_cli
def deployment_delete(cli: Cli, name: str) -> None:
    """Stop its replicas and forget it (their jobs stay in the history)."""
    cli.service.deployments("delete", name)
    cli.show({"name": name, "deleted": True}, lambda d: f"deployment {name} deleted")
