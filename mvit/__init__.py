"""mvit: MobileViT on-device deployment toolchain.

The code lives in the top-level folders models/, exporters/ and benchmarks/, installed as
mvit.models, mvit.exporters and mvit.benchmarks.
"""

__version__ = "0.1.0"
