"""The panel's TypeScript types (labextension/src/api/schema.d.ts) are generated from the served
OpenAPI document (jupyter_jobs/openapi.json) by openapi-typescript: they must be current."""

from __future__ import annotations

import shutil
import json
import subprocess
from pathlib import Path
from typing import Optional

from support import require

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "node_modules" / ".bin" / "openapi-typescript"
DOCUMENT = "jupyter_jobs/openapi.json"
TYPES = "labextension/src/api/schema.d.ts"


def generator_problem() -> Optional[str]:
    if shutil.which("node") is None:
        return "no node on PATH"
    if not GENERATOR.exists():
        return f"no {GENERATOR.relative_to(ROOT)}; run `jlpm install`"
    return None


def test_generated_types_are_current(tmp_path):
    require("openapi-typescript", generator_problem())
    out = tmp_path / "schema.d.ts"
    # the command of `jlpm gen:types` itself, writing into a temporary file
    args = json.loads((ROOT / "package.json").read_text())["scripts"]["gen:types"].split()[1:]
    args[args.index("-o") + 1] = str(out)
    run = subprocess.run([str(GENERATOR), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.read_bytes() == (ROOT / TYPES).read_bytes(), \
        f"{TYPES} is not current with {DOCUMENT}: run `jlpm gen:types`"
