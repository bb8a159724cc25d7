"""Sources of DICOM: folders, DICOMweb (QIDO-RS/WADO-RS) and DIMSE (C-FIND/C-GET), fetched incrementally."""

from tasks.sources.config import RetrieveMode, RetryPolicy, SourceConfig, SourceKind, TlsConfig, load_sources
from tasks.sources.errors import SourceError, SourceUnavailable
from tasks.sources.fetch import fetch_new
from tasks.sources.seen import SeenInstances, instance_digest
from tasks.sources.staging import FetchResult, clear_staged, staging_dir

__all__ = [
    "FetchResult",
    "RetrieveMode",
    "RetryPolicy",
    "SeenInstances",
    "SourceConfig",
    "SourceError",
    "SourceKind",
    "SourceUnavailable",
    "TlsConfig",
    "clear_staged",
    "fetch_new",
    "instance_digest",
    "load_sources",
    "staging_dir",
]
