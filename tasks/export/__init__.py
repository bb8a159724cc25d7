"""Send a dataset's de-identified DICOM to an annotation tool or PACS: DICOMweb STOW-RS or DIMSE C-STORE."""
