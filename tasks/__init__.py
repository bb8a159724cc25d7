"""Domain logic of medflow: one sub-package per pipeline step, importable without a Prefect server."""
