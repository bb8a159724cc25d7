import numpy as np

from tasks.pixels.region import regions_from_header, scan_region
from tasks.pixels.synthetic import make_item, us_dataset
from tests.tasks.pixels.conftest import load


def test_ultrasound_regions_union_with_inclusive_corners():
    ds = load("OBXXXX1A.dcm")
    mask = regions_from_header(ds, (600, 800))
    assert mask is not None
    assert mask[60, 120] and mask[518, 799] and mask[576, 743]  # both regions, corners inclusive
    assert not mask[59, 120] and not mask[30, 400] and not mask[300, 100]


def test_cine_motion_region_finds_the_sector():
    item = make_item(np.random.default_rng(1), frames=12, colour=False, texts=0)
    gray = item.frames
    region = scan_region(us_dataset(item.frames), gray)
    assert region.method == "cine-motion"
    sector = item.sector
    assert region.mask[sector].mean() > 0.97  # keeps the sector
    assert region.mask[~sector].mean() < 0.15  # blanks most of the rest (hull + small dilation)


def test_single_frame_and_non_ultrasound_fall_back_to_no_blanking():
    item = make_item(np.random.default_rng(2), frames=1, colour=False, texts=0)
    assert scan_region(us_dataset(item.frames), item.frames).method == "none-fallback"
    ds = us_dataset(item.frames)
    ds.Modality = "OT"
    region = scan_region(ds, item.frames)
    assert region.method == "not-ultrasound" and region.mask is None
