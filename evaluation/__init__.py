"""Accuracy on labelled data (mvit-eval) and the verdict on quantised variants.

Downstream of benchmarks/: it runs artefacts through the exporters' runners and times variants
with benchmarks' interleaved A/B, so nothing upstream imports it.
"""
