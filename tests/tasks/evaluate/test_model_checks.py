"""Occlusion and saliency sanity on a tiny real Conv3d trained here, where the answer is known by construction.

Positive clips carry a bright blob in the top-left quadrant during the second quarter of the frames only;
a model that learned the task must lose its output when exactly that region or that time segment is masked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tasks.evaluate.model_checks import ModelAdapter, check_model
from tasks.evaluate.occlusion import occlusion_test, sector_box
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.ranking import weighted_auc
from tasks.evaluate.saliency import SanityResult, gradient_x_input, sanity_check


def make_clips(n: int, seed: int, distractor: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """``distractor``: an equally bright square bottom-right in every clip, which carries no label."""
    g = torch.Generator().manual_seed(seed)
    clips = torch.randint(10, 60, (n, 8, 16, 16), generator=g, dtype=torch.uint8)
    labels = (torch.arange(n) % 2).numpy()
    for i in np.flatnonzero(labels):
        clips[i, 2:4, 2:7, 2:7] = 230
    if distractor:
        clips[:, :, 10:14, 10:14] = 230
    return clips, labels


def prepare(clips: torch.Tensor) -> torch.Tensor:
    return clips.float().div(255.0).unsqueeze(1)


def score(out: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(out).view(-1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model on a shared 2-core machine: one thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit(distractor: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool3d(1), nn.Flatten(), nn.Linear(4, 1)
    )
    clips, labels = make_clips(64, seed=1, distractor=distractor)
    x, y = prepare(clips), torch.as_tensor(labels, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x).view(-1), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(one_thread) -> nn.Module:
    return fit(distractor=False)


@pytest.fixture(scope="module")
def trained_past_a_distractor(one_thread) -> nn.Module:
    """Learned to use the top-left blob and ignore the bright square every clip has: its maps depend on it."""
    return fit(distractor=True)


def auroc(labels: np.ndarray):
    pos = labels == 1
    return lambda s: float(weighted_auc(s, pos[None, :] * 1.0, ~pos[None, :] * 1.0)[0])


def test_occlusion_finds_the_region_and_the_time_segment_the_model_uses(trained):
    clips, labels = make_clips(32, seed=2)
    result = occlusion_test(lambda c: score(trained(prepare(c))), clips, grid=2, segments=4)
    assert auroc(labels)(result.baseline) == pytest.approx(1.0)
    assert np.unravel_index(result.region_delta.argmax(), (2, 2)) == (0, 0)
    assert result.region_delta[0, 0] > 5 * np.delete(result.region_delta.ravel(), 0).max()
    assert result.segment_delta.argmax() == 1
    assert auroc(labels)(result.region_scores[0, 0]) < 0.8 < auroc(labels)(result.region_scores[1, 1])


def test_sector_box_is_the_bright_part_of_the_frame():
    clips = torch.zeros((2, 3, 20, 30), dtype=torch.uint8)
    clips[0, 1, 4:15, 6:25] = 90
    assert sector_box(clips) == (4, 15, 6, 25)


def test_randomisation_test_flags_a_parameter_free_model():
    clips, _ = make_clips(8, seed=3)
    inputs = prepare(clips[1::2])  # positives

    class FixedFilter(nn.Module):  # "explains" brightness, learns nothing
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[..., :8, :8].mean(dim=(1, 2, 3, 4))

    flagged = sanity_check(FixedFilter(), lambda m, x: m(x), inputs, threshold=0.5, steps=8)
    assert flagged.unreliable and np.allclose(flagged.spearman, 1.0)


def test_a_map_similar_by_either_measure_is_unreliable():
    """The demo report's numbers (Spearman 0.989, SSIM 0.439) must fail, as must the mirror case."""
    maps = np.zeros((3, 4, 4))
    verdict = lambda rho, ssim: SanityResult(maps, maps, np.full(3, rho), np.full(3, ssim), 0.5).unreliable  # noqa: E731
    assert verdict(0.989, 0.439) and verdict(0.2, 0.8)
    assert not verdict(0.2, 0.3)


class MostlyInput(nn.Module):
    """Output ≈ sum of the input; the weights contribute a thousandth: gradient × input ≈ the input itself."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.head = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        learned = self.head(self.conv(x).amax(dim=(2, 3, 4))).view(-1)
        return x.sum(dim=(1, 2, 3, 4)) + 1e-3 * learned


def test_cascade_flags_gradient_x_input_on_a_model_that_barely_uses_its_weights():
    clips, _ = make_clips(6, seed=5)
    torch.manual_seed(0)
    result = sanity_check(MostlyInput(), lambda m, x: m(x), prepare(clips), method=gradient_x_input)
    assert [s.layer for s in result.cascade] == ["head", "conv"]  # top layer first
    assert result.unreliable
    assert all(step.spearman > 0.9 for step in result.cascade)


def test_cascade_passes_a_weight_dependent_map(trained_past_a_distractor):
    clips, _ = make_clips(8, seed=3, distractor=True)
    inputs = prepare(clips[1::2])  # positives
    baseline = inputs.mean(dim=0, keepdim=True)  # the average clip: what is common to all is not attributed
    for seed in (0, 1):
        result = sanity_check(trained_past_a_distractor, lambda m, x: score(m(x)), inputs, baseline, steps=8, seed=seed)
        assert result.trained.shape == (4, 16, 16)
        assert result.trained[:, :8, :8].sum() / result.trained.sum() > 0.9  # the map points at the blob
        assert [s.layer for s in result.cascade] == ["4", "0"]
        assert not result.unreliable
        assert np.median(result.spearman) < 0.5 and np.nanmedian(result.ssim) < 0.5


def test_the_same_method_on_a_model_whose_only_cue_is_the_brightest_region_is_flagged(trained):
    """Without a distractor the blob is both what the model learned and the brightest input: maps of the
    random network land on it too (SSIM ≥ 0.5), so by either measure they do not explain the model."""
    clips, _ = make_clips(8, seed=3)
    result = sanity_check(trained, lambda m, x: score(m(x)), prepare(clips[1::2]), steps=8)
    assert result.unreliable and np.median(result.spearman) < 0.5 <= np.nanmedian(result.ssim)


def test_check_model_reports_occlusion_saliency_and_ood(trained):
    clips, labels = make_clips(16, seed=4)

    def uncertainty(out: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(out).view(-1)
        return 1 - torch.maximum(p, 1 - p)

    adapter = ModelAdapter(trained, prepare, score, uncertainty)
    options = EvaluationOptions(saliency_clips=2, clips=16)
    result = check_model(adapter, clips, options, auroc(labels), "auroc")
    m = result.metrics
    assert m["occlusion_auroc__none"] == pytest.approx(1.0)
    assert m["occlusion_delta__region=r1c1"] > m["occlusion_delta__region=r2c2"]
    assert m["saliency_unreliable"] is (m["saliency_spearman"] >= 0.5 or m["saliency_ssim"] >= 0.5)
    assert {"saliency_spearman__layer=4", "saliency_ssim__layer=0"} <= set(m)
    assert 0.0 <= m["auroc_ood"] <= 1.0 and "auroc_ood__kind=noise" in m
    assert [s.title for s in result.sections][:2] == ["Occlusion", "Saliency sanity check (integrated gradients)"]
    assert all(s.figures for s in result.sections[:2])


class CountingSink:
    """A progress sink that adds up what it is told (the CLI's is a rich bar)."""

    def __init__(self) -> None:
        self.total, self.done = 0, 0

    def start(self, description: str, total: int) -> None:
        self.total = total

    def advance(self, passes: int) -> None:
        self.done += passes


def test_model_checks_stay_within_their_clip_bound_and_batch_size(trained):
    from tasks.evaluate.model_checks import check_passes
    from tasks.evaluate.saliency import sanity_stages

    seen: list[int] = []  # a closure, not an attribute: the randomised deep copy reports here too

    class Recording(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[0])
            return self.inner(x)

    def uncertainty(out: torch.Tensor) -> torch.Tensor:
        return 1 - torch.sigmoid(out).view(-1)

    adapter = ModelAdapter(Recording(trained), prepare, score, uncertainty)
    options = EvaluationOptions(clips=5, batch_size=2, saliency_clips=2, saliency_steps=3)
    assert options.clip_cap(gpu=False) == 5 and EvaluationOptions().clip_cap(gpu=False) == 8
    assert EvaluationOptions().clip_cap(gpu=True) == 32 and EvaluationOptions().check_batch(gpu=False) == 2
    sink = CountingSink()
    result = check_model(adapter, make_clips(5, seed=5)[0], options, progress=sink)
    assert result.metrics["model_check_clips"] == 5 and result.metrics["model_check_batch"] == 2
    assert seen and max(seen) <= 2  # occlusion, integrated-gradient steps and OOD: never more than a batch
    stages = sanity_stages(trained)
    assert sink.total == check_passes(5, options, 2, ood=True, stages=stages) == sink.done == sum(seen)
    with pytest.raises(ValueError, match="bound is 5"):
        check_model(adapter, make_clips(6, seed=5)[0], options)
