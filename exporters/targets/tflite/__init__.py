"""The TFLite (LiteRT) export target: everything only this format knows."""
