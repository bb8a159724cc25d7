"""Self-supervised pretraining of video (t,y,x) and volume (z,y,x) backbones on unlabelled stored arrays.

``proxies`` (pure tensor functions: 3D rotation, 3D jigsaw, NT-Xent), ``module`` (the LightningModule with one head
per proxy task), ``data`` (two clips of every stored array), ``run`` (``pretrain_backbone``: dataset → backbone-only
checkpoint + config).
"""
