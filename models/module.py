"""The LightningModule: backbone, head and objective are passed in; input preparation runs on the device."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.fairness import fairness_penalty
from models.heads.objectives import Objective


@dataclass(frozen=True)
class InputSpec:
    """Device-side preparation of uint8 clips: resize, augmentation, normalisation."""

    mean: float = 0.15
    std: float = 0.2
    size: int | None = None  # spatial size on the device (None: as stored, 112 for views)
    augment: bool = True
    pad: int = 8  # random crop/pad: shift by up to ``pad`` pixels
    intensity: float = 0.2  # random gain in [1-a, 1+a] and offset in [-a/2, a/2] (in [0,1] units)

    def as_dict(self) -> dict:
        return asdict(self)


def prepare_clips(clips: Tensor, spec: InputSpec, augment: bool = False) -> Tensor:
    """uint8 (N,T,H,W) or (N,T,H,W,C) → float (N,C,T,H,W), normalised; augmentation only when ``augment``."""
    if clips.dim() == 5:  # colour: average to grey (views are grey; this keeps RGB inputs usable)
        clips = clips.float().mean(dim=-1)
    x = clips.float().div_(255.0).unsqueeze(1)  # N,1,T,H,W
    if spec.size and x.shape[-1] != spec.size:
        x = F.interpolate(x, size=(x.shape[2], spec.size, spec.size), mode="trilinear", align_corners=False)
    if augment:
        x = _random_shift(x, spec.pad * x.shape[-1] // 112 if spec.size else spec.pad)
        n = x.shape[0]
        gain = 1 + (torch.rand(n, 1, 1, 1, 1, device=x.device) * 2 - 1) * spec.intensity
        offset = (torch.rand(n, 1, 1, 1, 1, device=x.device) - 0.5) * spec.intensity
        x = (x * gain + offset).clamp_(0, 1)
    return (x - spec.mean) / spec.std


def _random_shift(x: Tensor, pad: int) -> Tensor:
    """Zero-pad by ``pad`` and crop back at a random offset per sample (random crop/pad).

    One gather on the clips' device: no per-sample Python loop and no host sync, so it stays cheap on a GPU and
    can be captured in a CUDA graph."""
    if pad <= 0:
        return x
    offsets = torch.randint(0, 2 * pad + 1, (x.shape[0], 2), device=x.device)
    return crop_at(F.pad(x, (pad, pad, pad, pad)), offsets, x.shape[-2:])


def crop_at(padded: Tensor, offsets: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """``padded[i, ..., dy:dy+h, dx:dx+w]`` for each sample ``i`` with ``offsets[i] = (dy, dx)``, as one gather."""
    h, w = size
    n = torch.arange(padded.shape[0], device=padded.device)
    rows = offsets[:, :1] + torch.arange(h, device=padded.device)  # N,H
    cols = offsets[:, 1:] + torch.arange(w, device=padded.device)  # N,W
    picked = padded[n[:, None, None], :, :, rows[:, :, None], cols[:, None, :]]  # N,H,W,C,T
    return picked.permute(0, 3, 4, 1, 2)


class ClinicalModel(pl.LightningModule):
    """backbone → FusionHead (with tabular covariates) → objective; optional fairness penalty in the loss."""

    def __init__(self, backbone: nn.Module, head: nn.Module, objective: Objective, input_spec: InputSpec,
                 lr: float = 1e-3, weight_decay: float = 1e-4, fairness: str | None = None,
                 fairness_weight: float = 0.0, max_epochs: int = 10):  # fmt: skip
        super().__init__()
        self.backbone, self.head, self.objective, self.input_spec = backbone, head, objective, input_spec
        self.lr, self.weight_decay, self.max_epochs = lr, weight_decay, max_epochs
        self.fairness, self.fairness_weight = fairness, fairness_weight
        self._val: list[tuple[Tensor, dict[str, Tensor]]] = []

    def prepare(self, clips: Tensor, augment: bool = False) -> Tensor:
        return prepare_clips(clips, self.input_spec, augment)

    def forward(self, x: Tensor, tabular: Tensor | None = None) -> Tensor:
        return self.head(self.backbone(x), tabular)

    def _targets(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v for k, v in batch.items() if k not in ("video", "tabular")}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self(self.prepare(batch["video"], augment=self.input_spec.augment), batch["tabular"])
        loss = self.objective.loss(out, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=out.shape[0], sync_dist=True)
        if self.fairness and self.fairness_weight > 0:
            outcome = self.objective.fairness_label(batch) if self.fairness == "equalized-odds" else None
            penalty = fairness_penalty(self.fairness, self.objective.fairness_values(out), batch["group"], outcome)
            self.log("train_fairness", penalty, batch_size=out.shape[0], sync_dist=True)
            loss = loss + self.fairness_weight * penalty
        return loss

    def on_train_epoch_start(self) -> None:
        reset = getattr(getattr(self.objective, "criterion", None), "reset", None)
        if callable(reset):
            reset()  # Cox risk-set memory: start each epoch clean

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self(self.prepare(batch["video"]), batch["tabular"])
        self._val.append((out.float(), self._targets(batch)))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        out = torch.cat([o for o, _ in self._val])
        targets = {k: torch.cat([t[k] for _, t in self._val]) for k in self._val[0][1]}
        self._val.clear()
        # the whole validation split at once: exact risk sets for Cox, not per-batch fragments
        self.log("val_loss", self.objective.loss(out, targets), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.max_epochs, 1))
        return {"optimizer": opt, "lr_scheduler": sched}

    @torch.no_grad()
    def predict_outputs(self, loader: torch.utils.data.DataLoader) -> tuple[Tensor, Tensor]:
        """Head outputs averaged over each instance's test-time clips, with dataset indices; (N, out), (N,)."""
        self.eval()
        outs, indices = [], []
        use_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        for batch in loader:
            clips = batch["video"].to(self.device, non_blocking=True)
            tab = batch["tabular"].to(self.device)
            multi = getattr(loader.dataset, "mode", "") == "multi"  # (N, K, T, H, W): K clips per instance
            n, k = clips.shape[0], clips.shape[1] if multi else 1
            flat = clips.flatten(0, 1) if multi else clips
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = self(self.prepare(flat), tab.repeat_interleave(k, dim=0))
            outs.append(out.float().view(n, k, -1).mean(dim=1).cpu())
            indices.append(batch["index"])
        return torch.cat(outs), torch.cat(indices)
