"""The FLARE client script every site runs (``train_script`` of the job): the project's LightningModule on the
site's own dataset, under ``nvflare.client.lightning``'s patched Trainer.

Each round: receive the global weights, validate them on the site's validation split (the metrics that go back),
train ``local_epochs`` epochs (of ``local_batches`` batches each, when set), send the weights back. The site finds
its dataset and labels by its FLARE site name in ``plan.json`` (location names, resolved on the site's machine); no
path, id or label leaves it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from models.federated.plan import PLAN_FILE, FederationPlan
from models.federated.site import prepare_site
from tasks.locations import Locations


def main() -> None:
    import nvflare.client.lightning as flare
    import pytorch_lightning as pl

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    plan = FederationPlan.load(_plan_file())
    flare.init()
    site = plan.site(flare.get_site_name())
    cfg, prepared = prepare_site(plan, site, Locations.from_settings())
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision or "32-true",
        max_epochs=plan.local_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic="warn",
        num_sanity_val_steps=0,
        limit_train_batches=plan.local_batches or cfg.limit_batches,
    )
    flare.patch(trainer)  # FedProx: the proximal term comes with the global model's metadata
    while flare.is_running():
        flare.receive()
        trainer.validate(prepared.model, datamodule=prepared.dm, verbose=False)
        trainer.fit(prepared.model, datamodule=prepared.dm)


def _plan_file() -> Path:
    """``plan.json`` of the job: in the job's custom folder, which FLARE puts on ``sys.path``."""
    for folder in [Path(__file__).parent, *map(Path, sys.path)]:
        if (folder / PLAN_FILE).is_file():
            return folder / PLAN_FILE
    raise FileNotFoundError(f"{PLAN_FILE} is not in the job's custom folder")


if __name__ == "__main__":
    main()
