"""The benchmark results file (schema_version 1), shared by `mvit-bench` and the iOS harness.

The schema itself lives in `results.schema.json` beside this file, so the Swift side and any
other reader can use the same text. This module loads, validates and writes result documents;
every reader in `benchmarks/` goes through `load_results`, so a harness file and a runner file
are treated alike.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .files import atomic_write_text

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


class ResultsFileError(Exception):
    """A results file that cannot be used; the message is one line naming the file and the fix."""


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _fields(node: dict[str, Any]) -> tuple[str, ...]:
    return tuple(node["properties"])


def top_level_fields() -> tuple[str, ...]:
    return _fields(results_schema())


def machine_fields() -> tuple[str, ...]:
    return _fields(results_schema()["properties"]["machine"])


def result_fields() -> tuple[str, ...]:
    return _fields(results_schema()["$defs"]["result"])


def stats_fields() -> tuple[str, ...]:
    return _fields(results_schema()["$defs"]["stats"])


def _nullable_optional(node: dict[str, Any]) -> list[str]:
    """Keys that may be omitted: declared but not required (all of them accept null)."""
    return [k for k in node["properties"] if k not in node["required"]]


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def validate_document(doc: Any, source: str = "results") -> dict[str, Any]:
    """Check `doc` against the schema; return it with omitted nullable keys filled in as None.

    Raises ResultsFileError with one line naming the first problem found.
    """
    import jsonschema  # optional dependency (mvit[bench]); imported where it is needed

    schema = results_schema()
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        if isinstance(doc, dict) and doc.get("schema_version") not in (None, SCHEMA_VERSION):
            raise ResultsFileError(
                f"{source}: schema_version {doc.get('schema_version')!r} is not supported "
                f"(this mvit-bench reads version {SCHEMA_VERSION}); re-create the file with a "
                "matching mvit-bench or harness"
            )
        raise ResultsFileError(
            f"{source}: not a valid benchmark results file at {_where(error.absolute_path)}: "
            f"{error.message}; see docs/benchmarks.md for the schema"
        )
    for i, result in enumerate(doc["results"]):
        if len(result["times_ms"]) != result["runs"]:
            raise ResultsFileError(
                f"{source}: results[{i}] has runs={result['runs']} but "
                f"{len(result['times_ms'])} times_ms; every timed run must be listed"
            )
    machine = doc["machine"]
    for key in _nullable_optional(schema["properties"]["machine"]):
        machine.setdefault(key, None)
    for key in _nullable_optional(schema):
        doc.setdefault(key, None)
    result_node = schema["$defs"]["result"]
    for result in doc["results"]:
        for key in _nullable_optional(result_node):
            result.setdefault(key, None)
    return doc


def load_results(path: Path | str) -> dict[str, Any]:
    """Read and validate a results file written by `mvit-bench run` or the iOS harness."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultsFileError(
            f"{path}: no such file; pass a results JSON written by mvit-bench run or the iOS harness"
        ) from None
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: not JSON (line {exc.lineno}: {exc.msg}); pass a results JSON file") from None
    return validate_document(doc, source=str(path))


def write_results(path: Path | str, doc: dict[str, Any]) -> Path:
    """Validate, then write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    validate_document(doc, source=str(path))
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
