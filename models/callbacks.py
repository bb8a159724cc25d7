"""Training schedules as Lightning callbacks."""

from __future__ import annotations

import pytorch_lightning as pl


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
