"""Layout reuse: a device's text layout masks its next cine after a cheap verification; a changed layout falls
back to full detection; new text on one cine is found and masked. Judged on the pixels written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tasks.pixels import clean_pixels
from tasks.pixels.layout import Layout, LayoutCache, device_key
from tasks.pixels.metrics import removed_in_pixels
from tasks.pixels.synthetic import make_item, us_dataset


class Counting:
    """The real detector, counting the images it is given."""

    def __init__(self, inner) -> None:
        self.inner, self.images, self.name = inner, 0, inner.name

    def detect(self, image):
        return self.detect_batch([image])[0]

    def detect_batch(self, images):
        self.images += len(images)
        return self.inner.detect_batch(images)


def _another_cine(item, rng) -> np.ndarray:
    """The same device and banner, new anatomy: fresh speckle in the sector outside the text boxes."""
    frames = item.frames.copy()
    keep = np.zeros(item.sector.shape, bool)
    for x0, y0, x1, y1 in item.boxes:
        keep[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = True
    fresh = rng.rayleigh(28.0, frames.shape[:3]).clip(0, 255).astype(np.uint8)
    where = item.sector & ~keep
    frames[:, where] = fresh[:, where][..., None] if frames.ndim == 4 else fresh[:, where]
    return frames


def _free_spot(item, size: tuple[int, int]) -> tuple[int, int]:
    """A text origin whose (w, h) box lies inside the sector, clear of the item's text."""
    taken = np.zeros(item.sector.shape, bool)
    for x0, y0, x1, y1 in item.boxes:
        taken[y0 - 6 : y1 + 6, x0 - 6 : x1 + 6] = True
    w, h = size
    for y in range(h + 40, item.sector.shape[0] - 4, 4):
        for x in range(4, item.sector.shape[1] - w - 4, 4):
            if item.sector[y - h : y + 4, x : x + w].all() and not taken[y - h : y + 4, x : x + w].any():
                return x, y
    raise AssertionError("no free spot in the sector")


def _clean(frames, options, cache, counter):
    ds = us_dataset(frames)
    before = frames[0].copy()
    result = clean_pixels(ds, options, cache, detector=counter)
    return before, ds.pixel_array[0], result.report


@pytest.fixture
def counter(detector):
    return Counting(detector)


@pytest.mark.slow
def test_layout_reused_changed_and_new_text(options, counter, tmp_path):
    rng = np.random.default_rng(11)
    item = make_item(rng, frames=6, shape=(240, 320), colour=True, texts=2, inside_share=1.0)
    cache = LayoutCache(tmp_path / "layouts.json")

    before, after, report = _clean(item.frames, options, cache, counter)
    assert report["layout"] == "detected" and all(removed_in_pixels(before, after, item.boxes))
    full = counter.images

    counter.images = 0
    second = _another_cine(item, rng)
    before, after, report = _clean(second, options, cache, counter)
    assert report["layout"] == "reused" and all(removed_in_pixels(before, after, item.boxes))
    assert counter.images < full  # no detection pass, verification only
    assert report["verify_boxes"] == 0 and len(report["boxes"]) >= len(item.boxes)  # the layout masked it all

    counter.images = 0
    third = _another_cine(item, rng)  # one cine of the study gets a new line of text
    layer = np.zeros(third.shape[1:3], np.uint8)
    cv2.putText(layer, "DOE^JANE", _free_spot(item, (92, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
    third[:, layer > 0] = 255
    ys, xs = np.nonzero(layer)
    new_box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    before, after, report = _clean(third, options, cache, counter)
    assert report["layout"] == "reused" and report["verify_boxes"] >= 1
    assert all(removed_in_pixels(before, after, [*item.boxes, new_box]))

    other = make_item(np.random.default_rng(12), frames=6, shape=(240, 320), colour=True, texts=6, inside_share=1.0)
    assert len(other.boxes) > 2  # more new lines than verification may add to a reused layout
    before, after, report = _clean(other.frames, options, cache, counter)  # same device, new layout
    assert report["layout"] == "changed" and all(removed_in_pixels(before, after, other.boxes))


@pytest.mark.slow
def test_text_on_a_few_frames_of_a_reused_layout_is_found_and_masked(options, counter, tmp_path):
    """Text typed on two of six frames is absent from the median composite; verification after reuse asks the
    detector about the structural candidates of the cleaned maximum composite and masks it."""
    rng = np.random.default_rng(21)
    item = make_item(rng, frames=6, shape=(240, 320), colour=False, texts=2, inside_share=1.0)
    cache = LayoutCache(tmp_path / "layouts.json")
    _, _, report = _clean(item.frames, options, cache, counter)
    assert report["layout"] == "detected"

    later = _another_cine(item, rng)
    layer = np.zeros(later.shape[1:3], np.uint8)
    cv2.putText(layer, "SMITH^J", _free_spot(item, (84, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
    later[2:4, layer > 0] = 255  # frames 2 and 3 only
    ys, xs = np.nonzero(layer)
    new_box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    ds = us_dataset(later)
    shown = later[2].copy()
    report = clean_pixels(ds, options, cache, detector=counter).report
    assert report["layout"] == "reused" and report["verify_boxes"] >= 1
    assert all(removed_in_pixels(shown, ds.pixel_array[2], [*item.boxes, new_box]))


def test_layouts_persist_keyed_without_phi(tmp_path):
    ds = us_dataset(np.zeros((2, 32, 48), np.uint8))
    ds.Manufacturer, ds.ManufacturerModelName = "ACME", "SONO 9"
    key = device_key(ds)
    LayoutCache(tmp_path / "l.json").put(key, Layout(boxes=[(1, 2, 30, 9)]), persist=True)
    warm = LayoutCache(tmp_path / "l.json")
    assert warm.get(key).boxes == [(1, 2, 30, 9)]
    text = (tmp_path / "l.json").read_text()
    assert "ACME" not in text and "SONO" not in text and str(ds.SOPInstanceUID) not in text
    assert set(json.loads(text)["layouts"]) == {key}
    ds.ManufacturerModelName = "SONO 10"
    assert device_key(ds) != key
