"""Instance types against a real server: a spec names a type and gets its resources, backend
and env, its own fields winning key by key; unknown types are a 400 listing the known ones;
/backends lists each type with whether a job of it could start now; the magic's and the CLI's
--instance; a setting that cannot work stops the service with the reason."""

from __future__ import annotations

import pytest

from jupyter_jobs.domain.instance_types import InstanceTypes

TYPES = {"small": {"cpus": 1, "memory": "1g", "env": {"TIER": "small", "KEEP": "yes"}},
         "gpu-box": {"gpus": 2, "cpus": 4, "backend": "local"}}


@pytest.mark.parametrize("jobs_config", [{"instance_types": TYPES, "gpus": 1}])
async def test_a_spec_names_a_type_and_its_own_fields_win(api, workspace):
    job = await api.submit({"command": 'echo "$TIER $KEEP"', "workspace": "proj", "instance_type": "small",
                            "resources": {"memory": "2g"}, "env": {"TIER": "mine"}})
    assert job["spec"]["instance_type"] == "small"
    assert job["spec"]["resources"]["cpus"] == 1 and job["spec"]["resources"]["memory"] == "2g"
    done = await api.wait(job["id"])
    assert done["status"] == "succeeded"
    assert "".join(c.get("text", "") for c in await api.logs(job["id"])) == "mine yes\n"
    unknown = await api.submit({"command": "true", "workspace": "proj", "instance_type": "huge"}, expect=400)
    assert unknown["errors"][0]["field"] == "instance_type" and "known: gpu-box, small" in unknown["message"]
    too_big = await api.submit({"command": "true", "workspace": "proj", "instance_type": "gpu-box"}, expect=400)
    assert too_big["errors"][0]["field"] == "resources.gpus"  # the type's 2 GPUs on a 1-GPU host
    listed = {t["name"]: t for t in (await api.call("GET", "backends"))["instance_types"]}
    assert listed["small"]["available"] is True and listed["small"]["spec"]["resources"]["cpus"] == 1
    assert listed["gpu-box"]["available"] is False and "GPU" in listed["gpu-box"]["reason"]


def test_a_type_that_cannot_work_stops_the_service():
    with pytest.raises(ValueError, match="unknown \\['color'\\]"):
        InstanceTypes({"bad": {"color": "red"}})
    with pytest.raises(ValueError, match=r"resources\.gpus"):
        InstanceTypes({"bad": {"gpus": -1}})


def test_the_magic_and_the_cli_say_instance(tmp_path, monkeypatch):
    from jupyter_jobs.kernel.specs import build_spec

    monkeypatch.chdir(tmp_path)
    assert build_spec({"instance": "small", "gpus": 1}, tmp_path) == {
        "workspace": "", "env": {}, "instance_type": "small", "resources": {"gpus": 1}}
