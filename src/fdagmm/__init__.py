"""FDAGMM: federated Deep Autoencoding Gaussian Mixture Model for network anomaly detection.

The pipeline, one module a step (``data``): schema (a data set's columns, kinds and labels,
from schemas/*.yaml or inference) -> reading (one streaming CSV reader for every schema)
-> loading (the parse cache) -> dataset (the data set a run uses: its files and test records)
-> partition (split it into clients) -> features (encode) -> datamodule (serve a client's
records); then (``models``) dagmm (the model and its maths, plain torch) -> lit_module (the
LightningModule) -> client / server (federated averaging, checkpoint for resume)
-> evaluation (threshold and metrics) -> tracking (TensorBoard, metrics.json, terminal)
-> experiment (one run of one method, from a Hydra config); flower (the same federation
over Flower: SuperLink, SuperNodes, ServerApp and ClientApp; an optional extra).
Afterwards: detector / scoring (the exported model.pt, scoring new files) and report
(tables and figures of a sweep).
"""

__version__ = "0.1.0"
