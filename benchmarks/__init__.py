"""Latency benchmarks: runner, statistics, reports and regression verdicts (mvit-bench)."""
