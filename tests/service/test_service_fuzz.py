"""Property-based fuzzing of the API from its own OpenAPI spec (schemathesis strategies, driven by
hypothesis), against the real server: whatever the input, the answer is 2xx or 4xx, never 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from svc_helpers import create_key, free_port, start

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    port = free_port()
    proc = start(db, port)
    try:
        yield f"http://127.0.0.1:{port}", {"X-API-Key": create_key(db, "admin")}
    finally:
        proc.kill()
        proc.wait()


def test_no_server_errors_on_any_operation(server):
    base_url, headers = server
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures = []
    seen: dict[int, int] = {}
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case):
            response = case.call(base_url=base_url, headers=headers)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.body, response.status_code, response.text[:200]))

        call()
    assert not failures, failures[:5]
    assert sum(n for code, n in seen.items() if code < 300) > 0, seen  # some inputs got through
