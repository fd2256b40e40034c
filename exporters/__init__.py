"""Exports of registered models to CoreML, ONNX and TFLite, with numerics verified.

Kept light on purpose: importing `mvit.exporters` pulls in no converter. Use
`mvit.exporters.api.export_model` and `mvit.exporters.targets.get_target`.
"""
