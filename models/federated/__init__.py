"""Federated training across sites on NVIDIA FLARE: each site trains the project's LightningModule on its own
dataset; only weights and aggregate metrics travel (see ``models/README.md``)."""
