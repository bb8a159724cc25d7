"""Expert labels from annotation tools (MD.ai's JSON export) joined to a dataset through its keyed pseudonyms."""
