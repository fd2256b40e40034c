"""The CoreML export target: everything only this format knows."""
