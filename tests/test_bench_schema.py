import json
from pathlib import Path

import pytest
from bench_docs import document, harness_document, lognormal_times, result

from mvit.benchmarks import schema
from mvit.benchmarks.runtimes import RUNTIMES
from mvit.benchmarks.schema import ResultsFileError, load_results, results_schema, validate_document, write_results


def _good():
    return document([result(lognormal_times(10, 30, 0))])


def test_runner_document_round_trips(tmp_path):
    path = write_results(tmp_path / "r.json", _good())
    doc = load_results(path)
    assert doc["results"][0]["stats"]["median_ms"] == pytest.approx(_good()["results"][0]["stats"]["median_ms"])
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind


def test_harness_document_with_omitted_optionals_is_accepted_and_filled_with_null():
    doc = validate_document(harness_document({"cpuOnly": lognormal_times(5, 20, 1), "all": lognormal_times(2, 20, 2)}))
    row = doc["results"][0]
    assert row["threads"] is None and row["macs"] is None and row["compute_units"] == "cpuOnly"
    assert doc["gemm_gflops"] is None and doc["machine"]["thermal_state"] == "nominal"


def test_schema_fields_match_the_contract():
    assert schema.stats_fields() == ("mean_ms", "median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms")
    assert set(schema.result_fields()) == {
        "model",
        "config",
        "task",
        "runtime",
        "compute_units",
        "precision",
        "input_size",
        "batch",
        "threads",
        "artefact",
        "compile_ms",
        "load_ms",
        "first_inference_ms",
        "warmup_runs",
        "runs",
        "times_ms",
        "stats",
        "peak_rss_mb",
        "macs",
        "gflops_per_s",
        "function",
        "vision",
        "compute_plan",
    }  # the last three: iOS harness
    assert set(schema.top_level_fields()) == {"schema_version", "tool", "created_utc", "machine", "gemm_gflops", "results"}


def _mutations():
    def camel_case(d):
        d["results"][0]["firstInferenceMs"] = d["results"][0].pop("first_inference_ms")

    def wrong_version(d):
        d["schema_version"] = 2

    def runs_mismatch(d):
        d["results"][0]["runs"] = 31

    def missing_stat(d):
        del d["results"][0]["stats"]["p99_ms"]

    def bad_runtime(d):
        d["results"][0]["runtime"] = "tensorrt"

    def bad_units(d):
        d["results"][0]["compute_units"] = "neuralEngine"

    def bad_date(d):
        d["created_utc"] = "yesterday"

    def string_number(d):
        d["results"][0]["load_ms"] = "12.5"

    def bad_size(d):
        d["results"][0]["input_size"] = [256]

    return [camel_case, wrong_version, runs_mismatch, missing_stat, bad_runtime, bad_units, bad_date, string_number, bad_size]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_invalid_documents_are_rejected_with_one_line(mutate, tmp_path):
    doc = _good()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultsFileError) as info:
        load_results(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_wrong_version_says_so(tmp_path):
    doc = _good()
    doc["schema_version"] = 2
    with pytest.raises(ResultsFileError, match="schema_version 2 is not supported"):
        validate_document(doc)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ResultsFileError, match="not JSON"):
        load_results(path)
    with pytest.raises(ResultsFileError, match="no such file"):
        load_results(tmp_path / "absent.json")


def test_cli_reports_bad_file_in_one_line_without_traceback(tmp_path, capsys):
    from mvit.benchmarks.cli import main

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(SystemExit) as info:
        main(["report", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "bad.json" in err


def test_the_schema_runtime_enum_is_the_registry_runtimes():
    # The file is shared with the Swift harness and readers outside mvit, so it names no runtime
    # (a new target must not need an edit there); mvit narrows `runtime` to the registry's.
    document_schema = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results.schema.json").read_text())
    in_file = [v["runtime"] for v in _walk(document_schema) if isinstance(v, dict) and isinstance(v.get("runtime"), dict)]
    assert in_file and all("enum" not in node and node["type"] == "string" for node in in_file), in_file
    assert results_schema()["$defs"]["result"]["properties"]["runtime"]["enum"] == list(RUNTIMES)


@pytest.mark.parametrize("runtime", [*RUNTIMES, "tensorrt", ""])
def test_a_results_row_validates_only_with_a_registered_runtime(runtime):
    doc = _good()
    doc["results"][0]["runtime"] = runtime
    if runtime in RUNTIMES:
        validate_document(doc)
    else:
        with pytest.raises(ResultsFileError, match=r"results\[0\]\.runtime"):
            validate_document(doc)


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)
