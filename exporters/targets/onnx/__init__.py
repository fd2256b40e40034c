"""The ONNX export target: everything only this format knows."""
