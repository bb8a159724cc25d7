"""The ingest pipeline in plain Python: discovery, batching, per-batch processing, finalisation."""
