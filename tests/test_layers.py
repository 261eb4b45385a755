"""The shape of the code, checked as CI checks it: the layer contracts of pyproject.toml hold
(import-linter), a wrong-way import breaks them naming the rule, no class passes 300 lines and no
function 60 (generated files aside)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jupyter_jobs"
LINT = Path(sys.executable).with_name("lint-imports")


def lint(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT), "--config", str(where / "pyproject.toml"), "--no-cache"], cwd=where,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_layer_contracts_hold():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(("module", "line", "rule"), [
    ("jobs/queue.py", "from ..workflows import runs", "the job core imports no feature"),
    ("storage/logs.py", "from ..jobs import service", "faces -> composition root"),
    ("workflows/dag.py", "from ..schedules import schedules", "faces -> composition root"),
    ("domain/spec.py", "import subprocess", "the domain does no I/O"),
])
def test_a_wrong_way_import_fails_naming_the_rule(tmp_path, module, line, rule):
    copy = tmp_path / "tree"
    shutil.copytree(PACKAGE, copy / "jupyter_jobs", ignore=shutil.ignore_patterns("labextension", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "jupyter_jobs" / module
    text = target.read_text()
    head, _, rest = text.partition("from __future__ import annotations\n")
    target.write_text(f"{head}from __future__ import annotations\n{line}\n{rest}")
    out = lint(copy)
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts")[-1]
    assert rule in broken, out.stdout[-3000:]


def _sizes() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ClassDef) and lines > 300:
                found.append(f"class {node.name} ({where}) has {lines} lines (at most 300)")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > 60:
                found.append(f"function {node.name} ({where}) has {lines} lines (at most 60)")
    return found


def test_no_class_over_300_lines_and_no_function_over_60():
    assert _sizes() == []
