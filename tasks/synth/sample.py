"""The curated sample of real pydicom-data files that ``medflow demo`` ingests (staged under neutral names)."""

from __future__ import annotations

import shutil
from pathlib import Path

#: Real files from pydicom-data: ultrasound cines, CT/MR (multi-frame, enhanced), every compressed syntax,
#: objects without pixels (SR, RT plan, ECG waveform), and two bad inputs that must be quarantined.
DEMO_FILES = (
    "examples_ybr_color.dcm",  # US cine, 30 frames, JPEG baseline
    "OBXXXX1A_rle_2frame.dcm",  # US, RLE, 2 frames
    "US1_J2KR.dcm",  # US, JPEG 2000 lossless
    "gdcm-US-ALOKA-16.dcm",  # US, implicit VR
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # US, JPEG lossless
    "CT_small.dcm",  # CT, explicit VR little endian
    "693_J2KR.dcm",  # CT, JPEG 2000 lossless
    "eCT_Supplemental.dcm",  # enhanced CT, multi-frame
    "MR_small_jpeg_ls_lossless.dcm",  # MR, JPEG-LS lossless
    "emri_small_RLE.dcm",  # enhanced MR, 10 frames, RLE
    "MR2_J2KI.dcm",  # MR, JPEG 2000 lossy
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # MR with overlay planes (60xx)
    "SC_rgb_expb_2frame.dcm",  # secondary capture, explicit VR big endian, 2 frames
    "SC_rgb_jpeg_dcmtk.dcm",  # secondary capture, JPEG baseline
    "JPEG-LL.dcm",  # NM, JPEG lossless
    "JPEGLSNearLossless_08.dcm",  # JPEG-LS near-lossless
    "image_dfl.dcm",  # deflated explicit VR
    "liver_1frame.dcm",  # segmentation
    "rtdose.dcm",  # RT dose, 15 frames
    "reportsi.dcm",  # structured report (no pixels)
    "rtplan.dcm",  # RT plan (no pixels)
    "waveform_ecg.dcm",  # ECG waveform (no image)
    "MR_truncated.dcm",  # truncated: quarantined
    "rtplan.dump",  # a text file: quarantined
)


def stage_sample(dest: Path) -> Path:
    """Copy the curated pydicom-data sample into ``dest`` under neutral names (no extension); return ``dest``."""
    from pydicom.data import get_testdata_file

    dest.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(DEMO_FILES):
        target = dest / f"{i:02d}_{Path(name).stem}"  # no extension: medflow reads any file name
        if not target.exists():
            shutil.copy(get_testdata_file(name), target)
    return dest
