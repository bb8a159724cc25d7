"""Storage: the Zarr v3 store (atomic, idempotent writes), OME-Zarr metadata, the manifest."""
