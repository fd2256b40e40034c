"""The int8 sensitivity search runs on the shared task runner (mvit.work.run_tasks): one task per
layer, the same table in this process, on local worker processes and on a Ray cluster."""

from __future__ import annotations

import numpy as np
import onnx
import outlier_fixture
import pytest
import trained_fixtures as tf
from onnxruntime.quantization import quantize_static

from mvit.exporters import cli
from mvit.exporters.sensitivity import measure
from mvit.exporters.targets.onnx.quantize import STATIC_SETTINGS, _Images, static_args
from mvit.exporters.targets.onnx.sensitivity import Variant, _layer_cosine, layers_of, run
from mvit.work import Workers

LAYERS = 6  # enough tasks to spread over two workers; the whole search is tests/test_int8_mixed_precision.py
QUANTISE_ARGS = static_args(STATIC_SETTINGS)  # what an int8 export searches with


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> tuple[Variant, list[str], list[str]]:
    """The outlier classifier's float ONNX graph, calibrated once, and the first layers the search scores."""
    root = tmp_path_factory.mktemp("sensitivity")
    checkpoint = outlier_fixture.write_checkpoint(root)
    size = tf.CLASSIFIER.image_size
    with pytest.raises(SystemExit) as exc:
        cli.main(["--checkpoint", str(checkpoint), "--image-size", str(size), "--target", "onnx", "--precision", "fp32", "--no-verify", "--out", str(root)])
    assert exc.value.code == 0
    src = next(root.glob("*.onnx"))
    digits, _ = tf.train_digits()
    pixels = tf.classification_scenes(np.random.default_rng(3), digits[:8], size)
    cache = root / "ranges.json"
    quantize_static(src, root / "full.onnx", _Images(pixels), calibration_cache_path=cache, **QUANTISE_ARGS)  # type: ignore[arg-type]
    layers = dict(list(layers_of(onnx.load(str(src)), []).items())[:LAYERS])
    variant = Variant(src.read_bytes(), cache.read_bytes(), pixels, run(src, pixels), QUANTISE_ARGS, {n: nodes for n, (_, nodes) in layers.items()})
    return variant, list(layers), [op for op, _ in layers.values()]


def test_the_search_gives_one_table_in_process_on_local_workers_and_on_ray(search):
    import ray  # the ray extra, which .[test] installs

    variant, layers, ops = search
    alone = measure(_layer_cosine, variant, layers, ops, Workers(count=1))
    assert len(alone) == LAYERS and all(0.0 < s.metric <= 1.0 for s in alone)
    assert measure(_layer_cosine, variant, layers, ops, Workers(count=2)) == alone

    # address="local": a cluster of its own, never one another process on this machine left running
    context = ray.init(address="local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, logging_level="ERROR")
    try:
        on_ray = measure(_layer_cosine, variant, layers, ops, Workers(count=0, ray_address=context.address_info["gcs_address"]))
    finally:
        ray.shutdown()
    assert on_ray == alone


def test_the_layers_are_the_weighted_nodes_with_their_activations(search):
    variant, layers, ops = search
    assert set(ops) <= {"Conv", "MatMul", "Gemm"}
    for layer in layers:
        nodes = variant.layers[layer]
        assert nodes[0] == layer and len(nodes) == len(set(nodes))
