"""Where the file browser can reach a job's artifacts: the listing says so (`folder`) only when
the service keeps its jobs under the server's root."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import kill_running_jobs


@pytest.fixture
def jobs_data(jp_root_dir: Path) -> Path:
    path = jp_root_dir / "jobs-data"  # under the root this time
    yield path
    kill_running_jobs(path / "jobs.db")


async def test_artifacts_under_the_root_name_their_folder(api, workspace, jp_root_dir):
    job = await api.submit({"command": ["sh", "-c", 'echo 1 > "$JOB_ARTIFACTS_DIR/a.txt"'], "workspace": "proj"})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    listed = await api.call("GET", "jobs", job["id"], "artifacts")
    assert listed["artifacts"][0]["path"] == "a.txt"
    assert (jp_root_dir / listed["folder"] / "a.txt").read_text() == "1\n"
