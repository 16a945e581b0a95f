"""Models: DAGMM in plain torch (``dagmm``) and the LightningModule that trains it (``lit_module``)."""
