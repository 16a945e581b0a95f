"""FDAGMM: federated Deep Autoencoding Gaussian Mixture Model for network anomaly detection.

The pipeline, one module a step:
kdd (the KDDCUP99 schema and parsing) -> loading (which file, the parse cache)
-> partition (split it into clients) -> features (encode) -> datamodule (serve a client's
records) -> dagmm (the model and its maths, plain torch) -> lit_module (the
LightningModule) -> client / server (federated averaging, checkpoint for resume)
-> evaluation (threshold and metrics) -> tracking (TensorBoard, metrics.json, terminal)
-> experiment (one run of one method, from a Hydra config); flower (the same federation
over Flower: SuperLink, SuperNodes, ServerApp and ClientApp; an optional extra).
Afterwards: detector / scoring (the exported model.pt, scoring new files) and report
(tables and figures of a sweep).
"""

__version__ = "0.1.0"
