"""Environments from requirements against real uv and a real server: packages from wheels made
in the test and served from a folder on this machine (no index); built once, the second job
installs nothing; the build's output in the job's log before the job's own; a failing install
fails the job with reason `environment` and the installer's message; bad specs named by field."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from support import log_text


def make_wheel(folder: Path, name: str, version: str, source: str) -> Path:
    """A real (pure Python) wheel: a module, its METADATA, WHEEL and RECORD."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": source.encode(),
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "tinypkg", "1.0", "VALUE = 'tiny 1.0'\n")
    make_wheel(folder, "tinypkg", "2.0", "VALUE = 'tiny 2.0'\n")
    return folder


def env_config(wheels: Path) -> dict:
    return {"pip_index_url": "none", "pip_find_links": [str(wheels)]}


CODE = "import tinypkg; print(tinypkg.VALUE)"


@pytest.fixture
def jobs_config(wheels):
    return env_config(wheels)


async def test_built_once_then_reused(api, workspace):
    (workspace / "requirements.txt").write_text("tinypkg==1.0\n")
    first = await api.submit({"command": ["python3", "-c", CODE], "workspace": "proj",
                              "requirements": "requirements.txt"})
    done = await api.wait(first["id"], timeout=120)
    log = log_text(await api.logs(first["id"]))
    assert done["status"] == "succeeded", (done["message"], log)
    assert log.startswith("[jupyter_jobs] environment: building it") and log.endswith("tiny 1.0\n")
    second = await api.submit({"command": ["python3", "-c", CODE], "workspace": "proj", "requirements": "auto"})
    assert (await api.wait(second["id"], timeout=60))["status"] == "succeeded"
    assert log_text(await api.logs(second["id"])) == "tiny 1.0\n"  # nothing built, nothing installed
    other = await api.submit({"command": ["python3", "-c", CODE], "workspace": "proj",
                              "requirements": ["tinypkg==2.0"]})
    assert (await api.wait(other["id"], timeout=120))["status"] == "succeeded"
    assert log_text(await api.logs(other["id"])).endswith("tiny 2.0\n")
    listed = (await api.call("GET", "environments"))["environments"]
    assert sorted(e["requirements"] for e in listed) == ["tinypkg==1.0", "tinypkg==2.0"]
    assert all(e["size"] > 0 and e["kind"] == "venv" for e in listed)
    plain = await api.submit({"command": ["python3", "-c", "import importlib.util as u; "
                                          "print(u.find_spec('tinypkg') is None)"], "workspace": "proj"})
    assert (await api.wait(plain["id"]))["status"] == "succeeded"
    assert log_text(await api.logs(plain["id"])) == "True\n"  # by default requirements.txt is not applied


async def test_a_failing_install_fails_the_job_with_the_installers_message(api, workspace):
    job = await api.submit({"command": "true", "workspace": "proj", "requirements": ["tinypkg==9.9"]})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "failed" and done["reason"] == "environment"
    assert "tinypkg==9.9" in done["message"]


@pytest.mark.parametrize("requirements, words", [
    ("missing.txt", "no file"), ("../up.txt", "inside the workspace"), (["ok", ""], "non-empty"),
    (["a\nb"], "line breaks"), (5, "a file"),
])
async def test_bad_requirements_are_400(api, workspace, requirements, words):
    reply = await api.submit({"command": "true", "workspace": "proj", "requirements": requirements}, expect=400)
    assert reply["errors"][0]["field"] == "requirements" and words in reply["message"], reply


async def test_a_container_job_gets_an_image_built_once(api, workspace, tmp_path):
    from support import docker_problem, require

    require("docker", docker_problem())
    spec = {"command": ["python3", "-c", CODE], "workspace": "proj", "backend": "docker",
            "image": "jupyter-jobs/python:test", "requirements": ["tinypkg==2.0"]}
    first = await api.submit(spec)
    done = await api.wait(first["id"], timeout=300)
    log = log_text(await api.logs(first["id"]))
    assert done["status"] == "succeeded", (done["message"], log)
    assert "building an image" in log and log.endswith("tiny 2.0\n")
    second = await api.submit(spec)
    assert (await api.wait(second["id"], timeout=120))["status"] == "succeeded"
    assert log_text(await api.logs(second["id"])) == "tiny 2.0\n"  # the image is there: no build
    images = [e for e in (await api.call("GET", "environments"))["environments"] if e["kind"] == "image"]
    assert any(e["base"] == "jupyter-jobs/python:test" and e["requirements"] == "tinypkg==2.0" and e["size"] > 0
               for e in images)
    assert all(e["last_used_at"] for e in images)
    import docker

    from jupyter_jobs.backends.docker_env import collect_images
    from jupyter_jobs.environments.venvs import Environments

    client = docker.from_env()
    idle = Environments(tmp_path / "no-uses")  # no use recorded: every image counts as long unused
    removed = collect_images(client, idle, max_age=None, max_size=1, keep_recent=0)  # housekeeping's way
    assert removed["images_removed"] >= 1 and removed["image_bytes_freed"] > 0
    assert not [e for e in (await api.call("GET", "environments"))["environments"] if e["kind"] == "image"]


def test_unused_environments_are_collected_by_age_then_size(wheels, tmp_path):
    import os
    import time

    from jupyter_jobs.environments.venvs import READY, Environments
    from jupyter_jobs.jobs.housekeeping import Retention

    envs = Environments(tmp_path / "envs", index_url="none", find_links=[str(wheels)])
    logged: list[bytes] = []
    old = envs.venv("python3", "tinypkg==1.0", logged.append)
    new = envs.venv("python3", "tinypkg==2.0", logged.append)
    assert envs.venv("python3", "tinypkg==1.0", logged.append) == old  # cached: no second build
    assert sum(b"building it" in line for line in logged) == 2
    os.utime(old / READY, (time.time() - 7200, time.time() - 7200))
    assert envs.collect(max_age=3600, max_size=None)["environments_removed"] == 1
    assert not old.exists() and new.exists()
    assert envs.collect(max_age=None, max_size=1, keep_recent=3600)["environments_removed"] == 0  # in use lately
    assert envs.collect(max_age=None, max_size=1, keep_recent=0)["environments_removed"] == 1
    assert envs.listing() == []
    retention = Retention({"environments_max_age": "30d", "environments_max_size": "50g"})
    assert retention.environments_max_age == 30 * 86400 and retention.environments_max_size == 50 << 30
