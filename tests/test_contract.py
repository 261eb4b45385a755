"""The served OpenAPI document and the server agree: schemathesis generates a few thousand
requests from the document (valid and invalid ones, with and without credentials) against a
real `jupyter server` process, and fails on any 5xx or any reply the document does not allow.

The server runs the futures backend of tests/fakes.py: the contract is HTTP's, and fuzzed
specs must not run fuzzed commands on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from support import ServerProcess

TOKEN = "contract-token"
AUTH = {"Authorization": f"token {TOKEN}"}
#: per operation; ~10 operations: a few thousand requests in all
EXAMPLES = int(os.environ.get("JUPYTER_JOBS_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("contract")
    root = base / "root"
    root.mkdir()
    (root / "proj").mkdir()
    tests = str(Path(__file__).resolve().parent)
    server = ServerProcess(root, base / "data", token=TOKEN, env={"PYTHONPATH": tests}, extra=[
        "--JobsApp.backends={'fake': 'fakes.FakeBackend'}",
        "--JobsApp.disabled_backends=['local', 'docker', 'slurm']",
        "--JobsApp.default_backend=fake",
    ]).start()
    yield server
    server.stop()


def test_the_server_keeps_to_its_openapi_document(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/jupyter-jobs/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        _fuzz(operation, fuzz_server.url)


def _fuzz(operation, url: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def one(case):
        if case.path.endswith("/logs") or (case.path.endswith("/jobs") and case.method == "POST"):
            case.query = {**(case.query or {}), "follow": "false"}  # a followed log stays open by design
        # valid-looking specs may still be refused for what the document cannot say (an unknown
        # backend name, a missing workspace folder): 400s naming the field, not drift
        case.call_and_validate(base_url=url, headers=AUTH, excluded_checks=[positive_data_acceptance])

    one()
