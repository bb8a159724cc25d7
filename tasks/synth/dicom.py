"""Build synthetic DICOM objects: US Multi-frame echo cines and CT/MR slice series, with real-looking PHI."""

from __future__ import annotations

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MRImageStorage,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from tasks.synth.people import OPERATORS, Patient

# A root reserved for this generator's objects; UIDs derive from it plus a seeded entropy source.
UID_PREFIX = "1.2.826.0.1.3680043.10.1137."  # pydicom-style root + a synthetic suffix
SYNTHETIC_NOTE = "SYNTHETIC medflow phantom - not a real patient"


def make_uid(rng: np.random.Generator) -> str:
    """A deterministic UID (same seed, same UIDs)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(rng.integers(0, 2**63))])


def _patient_module(ds: Dataset, p: Patient) -> None:
    ds.PatientName = p.name
    ds.PatientID = p.mrn
    ds.IssuerOfPatientID = "SYNTH-MRN"
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.PatientAge = f"{p.age:03d}Y"
    ds.PatientWeight = "78"
    ds.PatientSize = "1.74"
    ds.OtherPatientIDs = f"H{p.mrn[::-1]}"
    ds.PatientAddress = "12 Synthetic Lane, Phantom City"


def _study_module(ds: Dataset, p: Patient, study_uid: str, description: str) -> None:
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = p.study_date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = p.study_time
    ds.AccessionNumber = p.accession
    ds.StudyID = p.accession[-4:]
    ds.ReferringPhysicianName = p.physician
    ds.PerformingPhysicianName = p.physician
    ds.OperatorsName = OPERATORS[int(p.mrn) % len(OPERATORS)]  # deterministic, no RNG draw
    ds.InstitutionName = p.institution
    ds.InstitutionAddress = "1 Hospital Road, Phantom City"
    ds.StationName = "SYNTH-US01"
    ds.StudyDescription = description
    ds.Manufacturer = "medflow-synthetic"
    ds.ManufacturerModelName = "Phantom 1"
    ds.DeviceSerialNumber = "SN-0000-SYNTH"
    ds.SoftwareVersions = "medflow-synth 1"
    ds.ImageComments = SYNTHETIC_NOTE


def _file_meta(ds: Dataset, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationVersionName = "MEDFLOW_SYNTH"
    ds.file_meta = meta


def _ultrasound_region(width: int, height: int, top: int, depth_cm: float) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = top
    region.RegionLocationMaxX1 = width - 1
    region.RegionLocationMaxY1 = height - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = depth_cm / (height - top)
    region.PhysicalDeltaY = depth_cm / (height - top)
    region.ReferencePixelX0 = width // 2
    region.ReferencePixelY0 = top
    return region


def echo_dataset(
    p: Patient,
    frames: np.ndarray,
    *,
    fps: float,
    study_uid: str,
    series_uid: str,
    rng: np.random.Generator,
    encoding: str,
    with_regions: bool,
    top_bar: int,
    heart_rate: float,
    instance_number: int,
) -> Dataset:
    """An Ultrasound Multi-frame Image; ``encoding`` is "jpeg" (baseline, lossy), "rle" or "native"."""
    ds = Dataset()
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = make_uid(rng)
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "US"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.SeriesDescription = "SYNTHETIC Echo A4C"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    _patient_module(ds, p)
    _study_module(ds, p, study_uid, "SYNTHETIC Echocardiogram")
    ds.BurnedInAnnotation = "YES"
    ds.NumberOfFrames = frames.shape[0]
    ds.FrameTime = f"{1000.0 / fps:.4f}"
    ds.CineRate = round(fps)
    ds.RecommendedDisplayFrameRate = round(fps)
    ds.FrameIncrementPointer = (0x0018, 0x1063)  # FrameTime
    ds.HeartRate = round(heart_rate)
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.TransducerData = "P4-2"
    ds.ProcessingFunction = "CARDIAC"
    if with_regions:
        ds.SequenceOfUltrasoundRegions = [_ultrasound_region(ds.Columns, ds.Rows, top_bar, 16.0)]
    if encoding == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_PROGRESSIVE, 0]
        fragments = [cv2.imencode(".jpg", f, params)[1].tobytes() for f in frames]
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.LossyImageCompressionRatio = f"{frames.nbytes / max(sum(map(len, fragments)), 1):.2f}"
        _file_meta(ds, JPEGBaseline8Bit)
    else:
        ds.PixelData = np.ascontiguousarray(frames).tobytes()
        ds.LossyImageCompression = "00"
        _file_meta(ds, ExplicitVRLittleEndian)
        if encoding == "rle":
            ds.compress(RLELossless, frames, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    return ds


def volume_slices(
    p: Patient,
    vol: np.ndarray,
    *,
    modality: str,
    study_uid: str,
    rng: np.random.Generator,
    spacing: tuple[float, float, float],
) -> list[Dataset]:
    """Single-frame CT or MR slices of one series, with ImagePositionPatient along z."""
    series_uid = make_uid(rng)
    frame_of_reference = make_uid(rng)
    out = []
    for k, plane in enumerate(vol):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        ds.SOPInstanceUID = make_uid(rng)
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference
        ds.Modality = modality
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = f"SYNTHETIC {modality} volume"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _patient_module(ds, p)
        _study_module(ds, p, study_uid, f"SYNTHETIC {modality}")
        ds.ImagePositionPatient = [-0.5 * vol.shape[2] * spacing[2], -0.5 * vol.shape[1] * spacing[1], k * spacing[0]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.SliceLocation = k * spacing[0]
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        if modality == "CT":
            ds.RescaleIntercept = 0
            ds.RescaleSlope = 1
            ds.RescaleType = "HU"
            ds.KVP = 120
            ds.WindowCenter, ds.WindowWidth = 40, 400
        else:
            ds.MagneticFieldStrength = 1.5
            ds.RepetitionTime = 500
            ds.EchoTime = 15
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
        ds.PixelData = np.ascontiguousarray(plane.astype("<i2")).tobytes()
        _file_meta(ds, ExplicitVRLittleEndian)
        out.append(ds)
    return out


def text_lines(p: Patient) -> list[str]:
    """Burned-in top-bar text as a scanner would show it: name, MRN, study date and time."""
    family, given = p.name.split("^")
    return [
        f"{family.upper()}, {given}  SYNTHETIC",
        f"ID {p.mrn}  {p.study_date:%d/%m/%Y} {p.study_time[:2]}:{p.study_time[2:4]}",
    ]
