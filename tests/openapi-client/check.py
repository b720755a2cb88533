#!/usr/bin/env python3
"""Checks Sluice's OpenAPI document with tools Sluice did not write.

1. validates the document with openapi-spec-validator;
2. generates a Python client from it with openapi-python-client (warnings fail);
3. imports that client and, against a running Sluice, lists runs through the generated
   function for GET /api/v1/runs, once per --query, and prints what each listing
   returned as one JSON object on stdout:

   {"openapi": "3.1.0", "validator": "openapi-spec-validator 0.9.0",
    "generator": "openapi-python-client 0.29.1",
    "queries": {"NAME": [{"id": …, "flow_id": …, "status": …, "trigger": …}, …]}}

Any failure (an invalid document, a generator warning, an answer other than 200) exits
non-zero with the reason on stderr. tests/it/openapi_client.rs runs it, in CI too.

Setup (a venv here, or anywhere else: run check.py with that venv's python):

    python3 -m venv tests/openapi-client/.venv
    tests/openapi-client/.venv/bin/pip install -r tests/openapi-client/requirements.txt

Usage:

    SLUICE_API_TOKEN=slc_… tests/openapi-client/.venv/bin/python tests/openapi-client/check.py \\
        openapi.json --base-url http://127.0.0.1:8080 \\
        --query 'ok={"status": "succeeded", "limit": 1}' --query 'one={"flow_id": "…"}'

A query's keys are the query parameters' names as the document gives them (`from`, not
the client's `from_`); their values are JSON, and ids and times are strings.
"""

import argparse
import datetime
import importlib
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
import tempfile
import typing
import uuid
from pathlib import Path

PACKAGE = "sluice_api_client"
# The generated module of GET /api/v1/runs: the operation's tag, then its operationId.
# Renaming either breaks every client generated before, so this names them on purpose.
RUNS_MODULE = f"{PACKAGE}.api.runs.history"


def fail(message: str) -> typing.NoReturn:
    print(f"check.py: {message}", file=sys.stderr)
    sys.exit(1)


def tool(name: str) -> str:
    """A console script of the venv this script runs in."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        fail(f"{path} is missing: pip install -r requirements.txt into this venv")
    return str(path)


def run(command: list[str], what: str) -> None:
    # The generator formats its output with ruff, a console script of the same venv.
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        fail(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    # Progress for people reading a test's output; stdout carries only the summary.
    print(f"{what}: ok", file=sys.stderr)


def validate(spec: Path) -> None:
    run(
        [tool("openapi-spec-validator"), "--validation-errors", "all", str(spec)],
        "openapi-spec-validator",
    )


def generate(spec: Path, out: Path) -> None:
    run(
        [
            tool("openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
            "--overwrite",
            "--fail-on-warning",
        ],
        "openapi-python-client generate",
    )


def arguments(
    function: typing.Callable[..., object], query: dict[str, object]
) -> dict[str, object]:
    """The generated function's keyword arguments for one query, typed as it declares."""
    parameters = inspect.signature(function).parameters
    kwargs: dict[str, object] = {}
    for name, value in query.items():
        # Python keywords (`from`) get a trailing underscore in the generated code.
        python_name = name if name in parameters else f"{name}_"
        if python_name not in parameters or python_name in ("client", "self"):
            fail(f"the generated {function.__module__} has no parameter for '{name}'")
        types = typing.get_args(parameters[python_name].annotation) or (
            parameters[python_name].annotation,
        )
        if uuid.UUID in types:
            value = uuid.UUID(str(value))
        elif datetime.datetime in types:
            value = datetime.datetime.fromisoformat(str(value))
        kwargs[python_name] = value
    return kwargs


def list_runs(
    out: Path, base_url: str, token: str, queries: dict[str, dict]
) -> dict[str, list]:
    sys.path.insert(0, str(out))
    client_module = importlib.import_module(f"{PACKAGE}.client")
    history = importlib.import_module(RUNS_MODULE)
    client = client_module.AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=False
    )
    listed: dict[str, list] = {}
    with client:
        for name, query in queries.items():
            response = history.sync_detailed(
                client=client, **arguments(history.sync_detailed, query)
            )
            if response.status_code != 200:
                fail(
                    f"query {name} {query}: {int(response.status_code)} {response.content!r}"
                )
            if not isinstance(response.parsed, list):
                fail(
                    f"query {name}: the client did not parse a list: {response.parsed!r}"
                )
            listed[name] = [
                {
                    "id": str(run.id),
                    "flow_id": str(run.flow_id),
                    "status": run.status,
                    "trigger": run.trigger,
                }
                for run in response.parsed
            ]
    return listed


def parse_query(text: str) -> tuple[str, dict]:
    name, sep, body = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, not {text!r}")
    try:
        query = json.loads(body)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{name}: {e}") from e
    if not isinstance(query, dict):
        raise argparse.ArgumentTypeError(f"{name}: a JSON object, please")
    return name, query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="the OpenAPI document (JSON)")
    parser.add_argument("--base-url", required=True, help="where Sluice listens")
    parser.add_argument(
        "--token",
        default=os.environ.get("SLUICE_API_TOKEN"),
        help="an API token (default: $SLUICE_API_TOKEN)",
    )
    parser.add_argument(
        "--query",
        type=parse_query,
        action="append",
        default=[],
        metavar="NAME=JSON",
        help='run filters to list with, e.g. \'ok={"status": "succeeded"}\'',
    )
    parser.add_argument("--out", type=Path, help="keep the generated client here")
    args = parser.parse_args()
    if not args.token:
        fail("no API token: --token or SLUICE_API_TOKEN")
    queries = dict(args.query)
    if len(queries) != len(args.query):
        fail("two queries share a name")
    try:
        spec = json.loads(args.spec.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{args.spec}: {e}")

    validate(args.spec)
    with tempfile.TemporaryDirectory(prefix="sluice-openapi-client-") as tmp:
        out = args.out.resolve() if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        generate(args.spec, out)
        listed = list_runs(out, args.base_url, args.token, queries)
    print(
        json.dumps(
            {
                "openapi": spec.get("openapi"),
                "validator": f"openapi-spec-validator {importlib.metadata.version('openapi-spec-validator')}",
                "generator": f"openapi-python-client {importlib.metadata.version('openapi-python-client')}",
                "queries": listed,
            }
        )
    )


if __name__ == "__main__":
    main()
