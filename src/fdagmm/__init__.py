"""FDAGMM: federated Deep Autoencoding Gaussian Mixture Model for network anomaly detection.

The Python API (``fdagmm.api``): ``DAGMM``, a detector with PyOD's contract (fit, decision_function,
predict, save, load), and ``federate``, a whole federation from ``src/train.py``'s overrides.
docs/architecture.md maps the package's layers.
"""

__all__ = ["DAGMM", "federate"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: ``import fdagmm.data.schema`` (a Flower app, a test) need not load the API's dependencies.
    if name in __all__:
        from fdagmm import api

        return getattr(api, name)
    raise AttributeError(f"module 'fdagmm' has no attribute {name!r}")
