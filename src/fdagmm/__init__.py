"""FDAGMM: federated Deep Autoencoding Gaussian Mixture Model for network anomaly detection.

The pipeline, one module a step:
kdd (load the KDDCUP99 file) -> partition (split it into clients) -> features (encode)
-> datamodule (serve a client's records) -> dagmm (the model and its maths, plain torch)
-> lit_module (the LightningModule) -> client / server (federated averaging)
-> evaluation (threshold and metrics) -> tracking (TensorBoard, metrics.json, terminal)
-> experiment (one run of one method, from a Hydra config).
"""

__version__ = "0.1.0"
