"""Training schedules and progress notes as Lightning callbacks."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class KLAnnealing(pl.Callback):
    """Evidential loss: raise the KL weight linearly from 0 to 1 over ``epochs`` epochs (Sensoy et al. use 10;
    softplus evidence with ~25 epochs avoided dead classes in our digits check)."""

    def __init__(self, epochs: int = 25):
        self.epochs = max(epochs, 1)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        criterion = getattr(pl_module.objective, "criterion", None)
        if criterion is not None and hasattr(criterion, "kl_weight"):
            criterion.kl_weight = min(1.0, trainer.current_epoch / self.epochs)
            pl_module.log("kl_weight", criterion.kl_weight)


class EpochEstimate(pl.Callback):
    """On a CPU: time the first training steps and log, early, roughly how long an epoch will take.

    The first step (worker start, first allocations) is left out when there are more; the estimate is the mean of
    the next ones times the steps per epoch. Logged once, by rank 0, with a hint at the small 3D CNN.
    """

    def __init__(self, backbone: str, steps: int = 2):
        self.backbone, self.steps = backbone, steps
        self._times: list[float] = []
        self._start = 0.0
        self._done = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:  # fmt: skip
        if self._done:
            return
        self._times.append(time.perf_counter() - self._start)
        total = int(trainer.num_training_batches) if trainer.num_training_batches != float("inf") else 0
        if len(self._times) <= min(self.steps, max(total - 1, 0)):
            return
        self._done = True
        timed = self._times[1:] if len(self._times) > 1 else self._times
        step_s = sum(timed) / len(timed)
        if trainer.is_global_zero:
            log.info(estimate_message(self.backbone, step_s, total, trainer.max_epochs or 1))


def estimate_message(backbone: str, step_s: float, steps: int, epochs: int) -> str:
    """The CPU estimate line: step time, epoch time, whole run, and the small 3D CNN as the CPU-sized choice."""
    epoch_s = step_s * steps
    text = (
        f"CPU estimate for {backbone}: {step_s:.1f} s per training step x {steps} steps = about "
        f"{_duration(epoch_s)} per epoch (training only), {_duration(epoch_s * epochs)} for {epochs} epoch(s)"
    )
    if backbone != "cnn3d":
        text += "; on a CPU the small 3D CNN trains far faster: --backbone cnn3d --size 56"
    return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
