"""docs/reliability.md is generated from the hostile-input suites; it must not go stale."""

from __future__ import annotations

import make_reliability_doc


def test_committed_doc_is_what_the_suites_generate():
    assert make_reliability_doc.DOC.read_text() == make_reliability_doc.render(), f"docs/reliability.md is stale: run {make_reliability_doc.COMMAND}"


def test_the_doc_covers_at_least_60_cases():
    import test_bench_hostile
    import test_hostile_export

    rows = test_hostile_export.describe_cases() + test_bench_hostile.describe_cases()
    assert len(rows) >= 60
    text = make_reliability_doc.render()
    assert all(f"| {row['id']} |" in text for row in rows)


def test_the_doc_lists_every_round_three_case_with_its_exit_code():
    text = make_reliability_doc.render()
    rows = make_reliability_doc.round3_rows()
    assert rows  # this branch has tests/test_hostile_round3_files.py at least
    for row in rows:
        assert f"| {row['id']} |" in text and f"| {row['exit']} |" in text.split(f"| {row['id']} |", 1)[1].split("\n", 1)[0]
