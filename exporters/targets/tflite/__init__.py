"""The TFLite (LiteRT) export target: everything only this format knows.

Importing the package imports nothing: the registry reads `options.py` without the target's
extra, and hands out the target from `assembled.py`, where its converter is imported.
"""
