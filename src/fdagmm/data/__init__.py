"""Data: the KDDCUP99 schema and reader, the parse cache, feature encoding, partitions into clients, the datamodule."""
