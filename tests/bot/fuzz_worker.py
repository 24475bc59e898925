"""One fuzzing process of tests/bot/test_fuzz.py.

Hypothesis generates cases in pure Python, so one process fuzzes at the speed of one core; the
test splits the routes between several of these and the live server, so that all the cores
work. Run as ``python -m tests.bot.fuzz_worker JOB.json``: the job names the server, the
OpenAPI document, the credentials, the operations to fuzz and the examples per operation; the
process prints one JSON line, ``{"cases": N, "failures": [...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def fuzz_operation(
    operation: Any,
    base: str,
    credentials: dict[str, dict[str, str]],
    examples: int,
    session: requests.Session,
) -> tuple[int, str | None]:
    """Cases run against one operation, and the first failure found (or None)."""
    name = f"{operation.method.upper()} {operation.path}"
    seen: list[int] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), who=st.sampled_from(sorted(credentials)))
    def fuzz(case: Any, who: str) -> None:
        seen.append(1)
        try:
            case.call_and_validate(
                base_url=base,
                session=session,
                headers=credentials[who],
                checks=CHECKS,
                timeout=10,
            )
        except Exception as exc:  # check failures arrive as exception groups
            raise AssertionError(f"{name} ({who}): {exc}") from exc

    try:
        fuzz()
    except AssertionError as exc:
        return len(seen), str(exc)[:2000]
    return len(seen), None


def run(job: dict[str, Any]) -> dict[str, Any]:
    schema = schemathesis.openapi.from_dict(job["spec"])
    wanted = {(m.upper(), p) for m, p in job["operations"]}
    session = requests.Session()
    cases, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in wanted:
            continue
        n, failure = fuzz_operation(
            operation, job["base"], job["credentials"], job["examples"], session
        )
        cases += n
        if failure is not None:
            failures.append(failure)
    return {"cases": cases, "failures": failures}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(Path(sys.argv[1]).read_text()))))
