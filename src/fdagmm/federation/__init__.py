"""Federation: what a client does, the strategies, the in-process round loop, checkpoints, and the Flower adapters."""
