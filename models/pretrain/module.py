"""``PretrainModel``: one backbone, a head per proxy task, losses summed; inputs prepared on the device."""

from __future__ import annotations

from enum import StrEnum

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from models.module import InputSpec, prepare_clips
from models.pretrain.proxies import CELLS, ROTATIONS, jigsaw_batch, nt_xent, permutation_set, rotation_batch


class Method(StrEnum):
    ROTATION = "rotation"
    JIGSAW = "jigsaw"
    CONTRASTIVE = "contrastive"


def _mlp(cin: int, cout: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, cout))


class PretrainModel(pl.LightningModule):
    """Self-supervised training of ``backbone`` with the proxy ``methods`` (each loss weighted 1).

    Batches hold ``video`` uint8 (N, 2, D, H, W): two clips of each instance (the contrastive pair; the other proxy
    tasks use the first)."""

    def __init__(self, backbone: nn.Module, methods: list[Method], input_spec: InputSpec, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_epochs: int = 10, permutations: int = 32, temperature: float = 0.1,
                 projection: int = 128):  # fmt: skip
        super().__init__()
        if not methods:
            raise ValueError("pretraining needs at least one method: rotation, jigsaw or contrastive")
        self.backbone, self.methods, self.input_spec = backbone, [Method(m) for m in methods], input_spec
        self.lr, self.weight_decay, self.max_epochs, self.temperature = lr, weight_decay, max_epochs, temperature
        width = backbone.out_features
        self.heads = nn.ModuleDict()
        if Method.ROTATION in self.methods:
            self.heads["rotation"] = _mlp(width, len(ROTATIONS))
        if Method.JIGSAW in self.methods:
            self.register_buffer("permutations", torch.as_tensor(permutation_set(permutations)), persistent=False)
            self.heads["jigsaw"] = _mlp(width * CELLS, permutations)
        if Method.CONTRASTIVE in self.methods:
            self.heads["contrastive"] = _mlp(width, projection, hidden=width)

    def losses(self, clips: Tensor, augment: bool = True) -> dict[str, Tensor]:
        """One loss (and accuracy, for the classification proxies) per method for a uint8 (N, 2, D, H, W) batch."""
        first = prepare_clips(clips[:, 0], self.input_spec, augment)
        out: dict[str, Tensor] = {}
        if Method.ROTATION in self.methods:
            cubes, labels = rotation_batch(first)
            logits = self.heads["rotation"](self.backbone(cubes))
            out["rotation"] = nn.functional.cross_entropy(logits, labels)
            out["rotation_acc"] = (logits.argmax(1) == labels).float().mean()
        if Method.JIGSAW in self.methods:
            cells, labels = jigsaw_batch(first, self.permutations)
            n = cells.shape[0]
            features = self.backbone(cells.flatten(0, 1)).view(n, -1)  # siamese: each cell on its own
            logits = self.heads["jigsaw"](features)
            out["jigsaw"] = nn.functional.cross_entropy(logits, labels)
            out["jigsaw_acc"] = (logits.argmax(1) == labels).float().mean()
        if Method.CONTRASTIVE in self.methods and clips.shape[0] >= 2:  # a lone clip has no negatives
            second = prepare_clips(clips[:, 1], self.input_spec, augment)
            z1, z2 = (
                self.heads["contrastive"](self.backbone(_flip(first))),
                self.heads["contrastive"](self.backbone(_flip(second))),
            )
            out["contrastive"] = nt_xent(z1, z2, self.temperature)
        return out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.losses(batch["video"])
        loss = sum(out[m.value] for m in self.methods if m.value in out)
        n = batch["video"].shape[0]
        for name, value in out.items():
            self.log(f"train_{name}", value, batch_size=n, sync_dist=True)
        self.log("train_loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self.losses(batch["video"], augment=False)
        n = batch["video"].shape[0]
        for name, value in out.items():
            self.log(f"val_{name}", value, batch_size=n, sync_dist=True)
        self.log("val_loss", sum(out[m.value] for m in self.methods if m.value in out), batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.max_epochs, 1))
        return {"optimizer": opt, "lr_scheduler": sched}


def _flip(x: Tensor) -> Tensor:
    """Left-right flip of a random half of the batch (a contrastive augmentation)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None, None], x.flip(-1), x)
