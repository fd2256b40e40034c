"""The benchmark results file (schema_version 1), shared by `mvit-bench` and the iOS harness.

The schema itself lives in `results.schema.json` beside this file, so the Swift side and any
other reader can use the same text. This module loads, validates and writes result documents;
every reader in `benchmarks/` goes through `load_results`, so a harness file and a runner file
are treated alike.
"""

from __future__ import annotations

import json
import math
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from mvit.errors import MvitError

from .files import atomic_write_text
from .runtime_names import RUNTIMES

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
# Bounds checked before anything else looks at a file, so a hostile one cannot exhaust memory,
# the stack or the bootstrap. A real file is a few hundred KB and 5 levels deep; the row and
# run caps are the schema's maxItems.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 8
MIN_LATENCY_MS = 1e-6  # 1 ns: below any clock the runners or the harness read
MAX_LATENCY_MS = 1e7  # about 3 hours for one inference
MAX_ITEMS = 100_000  # = maxItems of times_ms in the schema (tests check they agree)
_MAX_SHOWN = 120


class ResultsFileError(MvitError):
    """A results file that cannot be used; the message is one line naming the file and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # one line, whatever a field name contains


def _shown(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The schema file, with `runtime` narrowed to the runtimes that exist: pytorch and every
    registered target's. The file itself says only "a string", so that a new target needs no
    edit there and readers outside mvit still validate everything else."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    schema["$defs"]["result"]["properties"]["runtime"]["enum"] = list(RUNTIMES)
    return schema


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
    return _shown(out) if out else "top level"


def check_bounds(doc: Any, source: str = "results") -> None:
    """Nesting depth, list lengths and non-finite numbers, without recursion.

    JSON has no NaN or Infinity, but Python's json reads them; a NaN latency passes `minimum: 0`
    (every comparison with NaN is false), so it is refused here, naming the field.
    """
    stack: list[tuple[Any, tuple, int]] = [(doc, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise ResultsFileError(
                f"{source}: {_where(path)} is {node!r}; latencies and other numbers must be finite "
                "(JSON has no NaN or Infinity); re-create the file with mvit-bench run or the harness"
            )
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise ResultsFileError(
                f"{source}: nested more than {MAX_DEPTH} levels deep at {_where(path)}; not a benchmark results file (see docs/benchmarks.md for the schema)"
            )
        if len(node) > MAX_ITEMS:
            raise ResultsFileError(
                f"{source}: {_where(path)} has {len(node)} entries, more than the {MAX_ITEMS} a results file may hold; split the run into several files"
            )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        stack.extend((value, (*path, key), depth + 1) for key, value in items)


def validate_document(doc: Any, source: str = "results") -> dict[str, Any]:
    """Check `doc` against the schema; return it with omitted nullable keys filled in as None.

    Raises ResultsFileError with one line naming the first problem found.
    """
    import jsonschema  # optional dependency (mvit[bench]); imported where it is needed

    check_bounds(doc, source)
    schema = results_schema()
    max_rows = schema["properties"]["results"]["maxItems"]
    if isinstance(doc, dict) and isinstance(doc.get("results"), list) and len(doc["results"]) > max_rows:
        # before jsonschema, which would check every one of the rows first
        raise ResultsFileError(
            f"{source}: {len(doc['results'])} results rows, more than the {max_rows} a results file may hold; split the run into several files"
        )
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        if isinstance(doc, dict) and doc.get("schema_version") not in (None, SCHEMA_VERSION):
            raise ResultsFileError(
                f"{source}: schema_version {_shown(repr(doc.get('schema_version')))} is not supported "
                f"(this mvit-bench reads version {SCHEMA_VERSION}); re-create the file with a "
                "matching mvit-bench or harness"
            )
        raise ResultsFileError(
            f"{source}: not a valid benchmark results file at {_where(error.absolute_path)}: {_shown(error.message)}; see docs/benchmarks.md for the schema"
        )
    for i, result in enumerate(doc["results"]):
        _check_latencies(result["times_ms"], f"{source}: results[{i}].times_ms")
        if result.get("vision") is not None:
            _check_latencies(result["vision"]["times_ms"], f"{source}: results[{i}].vision.times_ms")
        if len(result["times_ms"]) != result["runs"]:
            raise ResultsFileError(f"{source}: results[{i}] has runs={result['runs']} but {len(result['times_ms'])} times_ms; every timed run must be listed")
        _check_harness_details(result, f"{source}: results[{i}]")
    machine = doc["machine"]
    for key in _nullable_optional(schema["properties"]["machine"]):
        machine.setdefault(key, None)
    for key in _nullable_optional(schema):
        doc.setdefault(key, None)
    result_node = schema["$defs"]["result"]
    for result in doc["results"]:
        for key in _nullable_optional(result_node):
            result.setdefault(key, None)
        for key in ("vision", "compute_plan"):  # the harness's nested objects: omitted keys read as null
            if result[key] is not None:
                for inner in _nullable_optional(result_node["properties"][key]):
                    result[key].setdefault(inner, None)
    return doc


def _check_latencies(times: list[float], where: str) -> None:
    """Each latency 0 or within MIN_LATENCY_MS..MAX_LATENCY_MS: 1e-300 or 1e300 ms is no measurement,
    and ratios and logs of such values overflow into verdicts that look like findings."""
    for k, t in enumerate(times):
        if t != 0 and not MIN_LATENCY_MS <= t <= MAX_LATENCY_MS:
            raise ResultsFileError(
                f"{where}[{k}] is {t!r} ms; a timed run lasts {MIN_LATENCY_MS:g} to {MAX_LATENCY_MS:g} ms "
                "(1 ns to about 3 hours); re-create the file with mvit-bench run or the harness"
            )


def _check_harness_details(result: dict[str, Any], where: str) -> None:
    """What the schema cannot say about the iOS harness's Vision run and compute-plan split."""
    vision = result.get("vision")
    if vision is not None and len(vision["times_ms"]) != vision["runs"]:
        raise ResultsFileError(f"{where}.vision has runs={vision['runs']} but {len(vision['times_ms'])} times_ms; every timed Vision request must be listed")
    plan = result.get("compute_plan")
    if plan is not None and plan["available"]:
        counted = plan["cpu_ops"] + plan["gpu_ops"] + plan["neural_engine_ops"]
        if counted != plan["operations"]:
            raise ResultsFileError(
                f"{where}.compute_plan counts {plan['operations']} operations but its devices add up to {counted}; re-create the file with the harness"
            )


def load_results(path: Path | str) -> dict[str, Any]:
    """Read and validate a results file written by `mvit-bench run` or the iOS harness."""
    path = Path(path)
    try:
        info = path.stat()
        # stat first: a FIFO or /dev/zero would block or never end once opened
        if not stat.S_ISREG(info.st_mode):
            raise ResultsFileError(f"{path}: not a regular file; pass a results JSON file")
        if info.st_size > MAX_FILE_BYTES:
            raise ResultsFileError(
                f"{path}: {info.st_size / 2**20:.0f} MB is more than a results file can be "
                f"({MAX_FILE_BYTES // 2**20} MB); pass a results JSON written by mvit-bench run or the iOS harness"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file; pass a results JSON written by mvit-bench run or the iOS harness") from None
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ResultsFileError(f"{path}: grew past {MAX_FILE_BYTES // 2**20} MB while being read; pass a finished file")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: not JSON (line {exc.lineno}: {exc.msg}); pass a results JSON file") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not UTF-8 text; pass a results JSON file") from None
    except RecursionError:
        raise ResultsFileError(
            f"{path}: nested too deeply to be a benchmark results file (more than {MAX_DEPTH} levels); see docs/benchmarks.md for the schema"
        ) from None
    return validate_document(doc, source=str(path))


def write_results(path: Path | str, doc: dict[str, Any]) -> Path:
    """Validate, then write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    validate_document(doc, source=str(path))
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
