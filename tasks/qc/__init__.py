"""Quality checks: Great Expectations suites over the manifest, per modality; failing rows are marked."""
