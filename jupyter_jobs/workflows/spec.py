"""Workflow specs: a YAML (or JSON) graph of jobs with `needs`, a parameter `matrix` and
`${{ }}` references, checked as a whole before anything runs and expanded into the concrete
jobs of a run. Pure: no I/O, no service; the service records and orders what this returns.

    name: mnist
    defaults: {backend: docker, image: ..., env: {SEED: "1"}}
    jobs:
      prepare: {command: python prepare.py}
      train:
        needs: [prepare]
        matrix: {lr: [0.1, 0.01], batch: [32, 64]}
        command: python train.py --lr ${{ matrix.lr }} --batch ${{ matrix.batch }}
      report: {needs: [train], command: python report.py}
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import ValidationError

from ..domain.errors import FieldError, SpecError
from ..domain.spec import JobSpec, unstorable

MAX_COMBINATIONS = 1000
MAX_JOBS = 5000
NODE_KEYS = {"needs", "matrix", "max_parallel", "continue_on_error", "uses", "with"}
#: built-in actions (`uses:`) and the parameters each takes in `with:`
ACTIONS = {"container@v1": {"image", "args"}, "git-checkout@v1": {"url", "ref"},
           "create-dataset@v1": {"name", "path"}, "create-model@v1": {"name", "path", "framework", "description"}}
#: what create-dataset@v1 and create-model@v1 run: $JOB_INPUTS_DIR/<path> (a needed job's artifacts, a
#: volume) copied into the output their service commits as a new version when the job succeeds
_COPY = ('src="$JOB_INPUTS_DIR/$JOB_ACTION_PATH"; out="$JOB_OUTPUTS_DIR/$JOB_ACTION_OUTPUT"; '
         'if [ -d "$src" ]; then cp -a "$src/." "$out/"; else cp -a "$src" "$out/"; fi')
SPEC_KEYS = set(JobSpec.model_fields)
TOP_KEYS = {"name", "description", "defaults", "jobs", "best", "inputs"}
INPUT_TYPES = ("string", "dataset")
_BEST = re.compile(r"^[^:\s]{1,200}:(min|max)$")  # the metric that marks the best job: loss:min
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # also an environment name: MATRIX_<PARAM>
_REF = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Node:
    """One job of a run: a workflow job, or one combination of its matrix."""

    name: str  # the workflow's job name
    key: str  # unique in the run: the name, or name[k=v,...] for a matrix combination
    matrix: dict[str, Any]
    needs: list[str]  # workflow job names
    spec: dict[str, Any]  # the job's spec, matrix values filled in; needs outputs stay as ${{ }}
    continue_on_error: bool = False
    max_parallel: Optional[int] = None

    @property
    def folder(self) -> str:
        """Where dependents find this job's artifacts: inputs/<job>/ or inputs/<job>/<k=v,...>/."""
        if not self.matrix:
            return self.name
        return f"{self.name}/" + ",".join(f"{k}={_SAFE.sub('_', str(v))}" for k, v in self.matrix.items())


@dataclass
class Plan:
    name: str
    nodes: list[Node] = field(default_factory=list)  # in an order where needs come first
    inputs: dict[str, Any] = field(default_factory=dict)  # the values given, defaults filled in

    def by_name(self, name: str) -> list[Node]:
        return [n for n in self.nodes if n.name == name]


class _Errors:
    """Every problem of a spec, each naming the job and field and, for YAML, the line."""

    def __init__(self, lines: dict[tuple, int]):
        self.lines, self.items = lines, []

    def add(self, path: tuple, message: str) -> None:
        line = next((self.lines[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.lines), None)
        where = f" (line {line})" if line else ""
        self.items.append(FieldError(field=".".join(map(str, path)) or "spec", message=message + where))

    def raise_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Each key's line in the YAML text, by its path (what an error points the user to)."""
    import yaml

    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                lines[child] = key.start_mark.line + 1
                walk(value, child)

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except yaml.YAMLError:
        pass
    return lines


def load(spec: Any) -> tuple[Any, dict[tuple, int]]:
    """A spec as given (YAML or JSON text, or an object), as an object and its key lines."""
    if not isinstance(spec, str):
        return spec, {}
    import yaml

    try:
        return yaml.safe_load(spec), _yaml_lines(spec)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError.one("spec", f"not valid YAML: {getattr(exc, 'problem', exc)}{where}") from None


def _refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return _REF.findall(value)
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def _fill(value: Any, refs: dict[str, str]) -> Any:
    """`value` with each `${{ ref }}` found in `refs` replaced; others are left as they are."""
    if isinstance(value, str):
        return _REF.sub(lambda m: refs.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_fill(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, refs) for k, v in value.items()}
    return value


def fill_outputs(spec: dict[str, Any], outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The spec with `${{ needs.<job>.outputs.<key> }}` filled from the jobs' outputs (once they
    ended); a key a job did not write becomes an empty string."""
    refs = {}
    for ref in _refs(spec):
        parts = ref.split(".")
        if len(parts) == 4 and parts[0] == "needs" and parts[2] == "outputs":
            value = outputs.get(parts[1], {}).get(parts[3], "")
            refs[ref] = value if isinstance(value, str) else json.dumps(value)
    return _fill(spec, refs)


def _order(jobs: dict[str, dict], needs: dict[str, list[str]], errors: _Errors) -> list[str]:
    """The jobs with each after the jobs it needs; a cycle is an error naming it."""
    done: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            errors.add(("jobs", name, "needs"), f"a cycle: {' -> '.join(cycle)}")
            return
        state[name] = 1
        for need in needs.get(name, []):
            if need in jobs and need != name:  # needing itself is said apart
                visit(need, [*trail, name])
        state[name] = 2
        done.append(name)

    for name in jobs:
        visit(name, [])
    return done


def _check_job(name: str, job: Any, names: set[str], errors: _Errors,
               declared: frozenset[str] = frozenset()) -> tuple[list[str], dict[str, list]]:
    """A job's own keys, needs and matrix; returns its needs and its matrix."""
    path = ("jobs", name)
    if not _NAME.match(str(name)):
        errors.add(path, "a job name is letters, digits, '_' and '-', starting with a letter or '_'")
    if not isinstance(job, dict):
        errors.add(path, "must be a mapping of the job's fields")
        return [], {}
    for key in job:
        if key not in SPEC_KEYS | NODE_KEYS:
            errors.add((*path, key), "unknown field")
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        errors.add((*path, "needs"), "must be a job name or a list of job names")
        needs = []
    for need in needs:
        if need == name:
            errors.add((*path, "needs"), "a job cannot need itself")
        elif need not in names:
            errors.add((*path, "needs"), f"no job {need!r} in this workflow")
    matrix = job.get("matrix") or {}
    if not isinstance(matrix, dict):
        errors.add((*path, "matrix"), "must map each parameter to a list of values")
        matrix = {}
    for key, values in list(matrix.items()):
        if not _PARAM.match(str(key)) or not isinstance(values, list) or not values or not all(
                isinstance(v, (str, int, float, bool)) for v in values):
            errors.add((*path, "matrix", key), "a matrix parameter is a name with a non-empty list of plain values")
            matrix = {k: v for k, v in matrix.items() if k != key}
    count = _count(matrix)
    if count > MAX_COMBINATIONS:
        errors.add((*path, "matrix"), f"{count:,} combinations; at most {MAX_COMBINATIONS:,}")
    for key, kind in (("max_parallel", int), ("continue_on_error", bool)):
        if key in job and (not isinstance(job[key], kind) or isinstance(job[key], bool) != (kind is bool)
                           or (kind is int and job[key] < 1)):
            errors.add((*path, key), "must be a positive integer" if kind is int else "must be true or false")
    _check_action(path, job, errors)
    for ref in _refs({k: v for k, v in job.items() if k not in NODE_KEYS - {"with"}}):
        parts = ref.split(".")
        if parts[0] == "matrix" and len(parts) == 2 and parts[1] in matrix:
            continue
        if parts[0] == "inputs" and len(parts) == 2 and parts[1] in declared:
            continue
        if len(parts) == 4 and parts[0] == "needs" and parts[1] in needs and parts[2] == "outputs":
            continue
        errors.add(path, f"undefined reference ${{{{ {ref} }}}}: use inputs.<a declared input>, matrix.<parameter> "
                         "of this job's matrix or needs.<a job it needs>.outputs.<key>")
    return needs, matrix


@dataclass
class Inputs:
    """A run's inputs: `${{ inputs.<name> }}` values, and the dataset versions every job reads
    (at /inputs/<name> in a container)."""

    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)


def _inputs(declared: Any, given: Optional[dict[str, Any]], jobs: set[str], errors: _Errors) -> Inputs:
    """The declared inputs checked, and (when `given` is not None) the values of a run: each
    given or defaulted, of its type; unknown ones named."""
    out = Inputs()
    if not isinstance(declared, dict):
        errors.add(("inputs",), "must map each input's name to {type: string | dataset, default: ...}")
        return out
    for name, info in declared.items():
        path = ("inputs", str(name))
        if not _PARAM.match(str(name)):
            errors.add(path, "an input name is letters, digits and '_', starting with a letter or '_'")
        elif not isinstance(info, dict) or info.get("type") not in INPUT_TYPES or set(info) - {
                "type", "default", "description"}:
            errors.add(path, "an input is {type: string | dataset, default: ..., description: ...} (a volume "
                       "is made by a job of the run: outputs: {<key>: {type: volume}}, or uses: git-checkout@v1)")
        elif info["type"] == "dataset" and name in jobs:
            errors.add(path, f"a dataset input is mounted at /inputs/{name}, where job {name!r}'s artifacts go: "
                       "rename one")
    if given is None:
        return out
    for name in set(given) - set(declared):
        errors.add(("inputs", str(name)), "not an input this workflow declares")
    for name, info in declared.items():
        if not isinstance(info, dict) or info.get("type") not in INPUT_TYPES:
            continue
        value = given.get(name, info.get("default"))
        if value is None:
            errors.add(("inputs", name), "required: this workflow declares it without a default")
        elif info["type"] == "string" and not isinstance(value, (str, int, float, bool)):
            errors.add(("inputs", name), "a string input takes a plain value")
        elif info["type"] == "dataset" and not (isinstance(value, str) and re.fullmatch(
                r"[a-z0-9][a-z0-9._-]{0,62}(:[1-9][0-9]{0,9})?", value)):
            errors.add(("inputs", name), "a dataset input takes NAME or NAME:VERSION")
        elif info["type"] == "dataset":
            dataset, _, version = value.partition(":")
            out.datasets.append({"name": dataset, **({"version": int(version)} if version else {}),
                                 "mount": f"/inputs/{name}"})
            out.values[name], out.refs[f"inputs.{name}"] = value, dataset
        else:
            out.values[name] = value
            out.refs[f"inputs.{name}"] = json.dumps(value) if isinstance(value, bool) else str(value)
    return out


def _check_action(path: tuple, job: dict, errors: _Errors) -> None:
    """`uses:` names a built-in action; `with:` gives only its parameters."""
    if "uses" not in job:
        if "with" in job:
            errors.add((*path, "with"), "`with` gives an action's parameters: name the action in `uses`")
        return
    uses, given = job["uses"], job.get("with") or {}
    if uses not in ACTIONS:
        errors.add((*path, "uses"), f"unknown action {uses!r}; built-in: {', '.join(sorted(ACTIONS))}")
        return
    if not isinstance(given, dict):
        errors.add((*path, "with"), "must map the action's parameters to their values")
        return
    for key in set(given) - ACTIONS[uses]:
        errors.add((*path, "with", str(key)), f"{uses} takes {', '.join(sorted(ACTIONS[uses]))}")
    required = {"container@v1": "image", "git-checkout@v1": "url"}.get(uses, "name")
    if "command" in job or required not in given:
        errors.add((*path, "uses"), f"{uses} takes with.{required}, and no command")
    if uses.startswith("create-"):
        source = given.get("path")
        if not isinstance(source, str) or source.startswith("/") or ".." in source.split("/") or not source:
            errors.add((*path, "with", "path"), "a path under /inputs of the job: <a job it needs>[/<folder or file "
                       "of its artifacts>] or a volume one of them makes")


def _action(job: dict) -> dict[str, Any]:
    """The job fields a built-in action stands for."""
    given, uses = job.get("with") or {}, job.get("uses")
    if uses == "container@v1":
        args = given.get("args")
        return {"image": given.get("image"), **({"command": args} if args else {})}
    if uses == "git-checkout@v1":  # its workspace is the commit, its artifacts what the jobs after it read
        return {"git": {"url": given.get("url"), "ref": given.get("ref") or "HEAD"},
                "command": ["sh", "-c", 'cp -a . "$JOB_ARTIFACTS_DIR/"']}
    if uses in ("create-dataset@v1", "create-model@v1"):
        kind = uses.split("-")[1].split("@")[0]
        output = {"type": kind, "name": given.get("name"),
                  **{k: given[k] for k in ("framework", "description") if k in given}}
        return {"command": ["sh", "-c", _COPY], "outputs": {kind: output},
                "env": {"JOB_ACTION_PATH": str(given.get("path")), "JOB_ACTION_OUTPUT": kind}}
    return {}


def volumes(job: Any) -> list[str]:
    """The keys of a job's volume outputs (each /inputs/<key> for the jobs that need it)."""
    outputs = job.get("outputs") if isinstance(job, dict) else None
    if not isinstance(outputs, dict):
        return []
    return [str(k) for k, o in outputs.items() if isinstance(o, dict) and o.get("type") == "volume"]


def _check_volumes(jobs: dict[str, Any], matrices: dict[str, dict], inputs: frozenset[str], errors: _Errors) -> None:
    """A volume output is /inputs/<key> for the jobs after it: one thing by that name there."""
    seen: dict[str, str] = {}
    for name, job in jobs.items():
        for key in volumes(job):
            path = ("jobs", name, "outputs", key)
            if matrices.get(name):
                errors.add(path, "a matrix job's combinations would each make this volume: write a folder of its "
                           "artifacts instead")
            elif key in jobs or key in inputs:
                errors.add(path, f"/inputs/{key} holds {'job' if key in jobs else 'input'} {key!r}: rename the volume")
            elif key in seen:
                errors.add(path, f"job {seen[key]!r} makes a volume {key!r} too: rename one")
            seen.setdefault(key, name)


def _count(matrix: dict[str, list]) -> int:
    count = 1
    for values in matrix.values():
        count *= len(values)
    return count


def _combinations(matrix: dict[str, list]) -> list[dict[str, Any]]:
    if not matrix:
        return [{}]
    keys = list(matrix)
    return [dict(zip(keys, values)) for values in itertools.product(*(matrix[k] for k in keys))]


def _node(name: str, job: dict, defaults: dict, combo: dict, needs: list[str],
          given: Optional[Inputs] = None) -> Node:
    own = {**{k: v for k, v in job.items() if k not in NODE_KEYS}, **_action(job)}
    spec = {**defaults, **own}
    for key in ("env", "resources"):  # merged one level deep: a job adds to the defaults
        if isinstance(defaults.get(key), dict) and isinstance(own.get(key), dict):
            spec[key] = {**defaults[key], **own[key]}
    refs = {f"matrix.{k}": str(v) for k, v in combo.items()}
    if given is not None:
        refs.update(given.refs)
        if given.datasets and isinstance(spec.get("datasets", []), list):  # every job reads the dataset inputs
            named = {d.get("name") for d in spec.get("datasets", []) if isinstance(d, dict)}
            spec["datasets"] = [*spec.get("datasets", []), *(d for d in given.datasets if d["name"] not in named)]
    spec = _fill(spec, refs)
    if combo:
        spec["env"] = {**(spec.get("env") or {}), **{f"MATRIX_{k.upper()}": str(v) for k, v in combo.items()}}
    label = ",".join(f"{k}={v}" for k, v in combo.items())
    key = f"{name}[{label}]" if combo else name
    spec.setdefault("name", key)
    return Node(name=name, key=key, matrix=combo, needs=needs, spec=spec,
                continue_on_error=bool(job.get("continue_on_error", False)), max_parallel=job.get("max_parallel"))


def plan(spec: Any, inputs: Optional[dict[str, Any]] = None) -> Plan:
    """Check a workflow spec whole (SpecError lists every problem, each with its job, field and
    YAML line) and expand it into the jobs of one run with `inputs` (None: check the spec only,
    its declared inputs standing in as placeholders)."""
    data, lines = load(spec)
    errors = _Errors(lines)
    if not isinstance(data, dict):
        raise SpecError.one("spec", "a workflow is a mapping with `jobs` (and optionally `name`, `defaults`)")
    for key in data:
        if key not in TOP_KEYS:
            errors.add((key,), "unknown field")
    if "best" in data and not (isinstance(data["best"], str) and _BEST.match(data["best"])):
        errors.add(("best",), "the metric that marks the best job, as NAME:min or NAME:max (loss:min)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        errors.add(("defaults",), "must be a mapping of job fields")
        defaults = {}
    for key in defaults:
        if key not in SPEC_KEYS:
            errors.add(("defaults", key), "unknown field" + (" (per job only)" if key in NODE_KEYS else ""))
    if _refs(defaults):
        errors.add(("defaults",), "defaults cannot hold ${{ }} references: put them in a job")
    for err in _spec_errors({"command": "true", **defaults}):
        errors.add(("defaults", *err.field.split(".")), err.message)
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        errors.add(("jobs",), "a workflow needs `jobs`: a mapping of job names to jobs")
        errors.raise_any()
    names = set(map(str, jobs))
    declared = data.get("inputs") or {}
    given = _inputs(declared, inputs, names, errors)
    keys = frozenset(map(str, declared)) if isinstance(declared, dict) else frozenset()
    checked = {name: _check_job(str(name), job, names, errors, keys) for name, job in jobs.items()}
    order = _order(jobs, {n: c[0] for n, c in checked.items()}, errors)
    _check_volumes(jobs, {n: c[1] for n, c in checked.items()}, keys, errors)
    total = 0
    for name, (needs, matrix) in checked.items():  # each job's spec, as its first combination
        if isinstance(jobs[name], dict):
            first = {k: v[0] for k, v in matrix.items()}
            _check_spec(_node(name, jobs[name], defaults, first, needs, given), set(jobs[name]) | {"name"}, errors)
            total += _count(matrix)
    if total > MAX_JOBS:
        errors.add(("jobs",), f"over {MAX_JOBS:,} jobs in one run")
    errors.raise_any()
    result = Plan(name=str(data.get("name") or "workflow"), inputs=given.values)
    for name in order:
        needs, matrix = checked[name]
        result.nodes += [_node(name, jobs[name], defaults, combo, needs, given) for combo in _combinations(matrix)]
    if len(result.nodes) > MAX_JOBS:
        errors.add(("jobs",), f"{len(result.nodes):,} jobs in one run; at most {MAX_JOBS:,}")
    errors.raise_any()
    return result


def _spec_errors(spec: dict[str, Any]) -> list[FieldError]:
    """What the API would say of `spec` (references stand in as placeholders)."""
    unfit = unstorable(spec)
    if unfit:
        return unfit
    try:
        JobSpec.model_validate(json.loads(_REF.sub("x", json.dumps(spec))))
    except ValidationError as exc:
        return SpecError.from_validation(exc).errors
    return []


def _check_spec(node: Node, own: set[str], errors: _Errors) -> None:
    """The job's spec as the API checks it; what is wrong in the defaults is said once, there."""
    for err in _spec_errors(node.spec):
        top = err.field.split(".")[0]
        if top in own or top in ("command", "body", "spec"):
            errors.add(("jobs", node.name, *err.field.split(".")), err.message)
